using Replication.Engine.Client;
using Replication.Engine.Transport;

namespace Replication.Engine.Cluster;

/// <summary>
/// Serving remote clients: every node of an embedded cluster hands its authenticated client
/// connections to this cluster (<see cref="IClientRequestHandler"/>), which already routes each
/// request to the shard's leader; the node a client is connected to therefore does not matter.
/// Also holds the cluster key every node and client authenticates with (docs/wire-protocol.md).
/// </summary>
public sealed partial class EmbeddedCluster : IClientRequestHandler
{
    private ClusterKey? _key;

    /// <summary>
    /// Derived once from <see cref="ClusterOptions.ClusterSecret"/> and the cluster id; without a
    /// secret, from a random one that lives only in this object (then no client can connect).
    /// </summary>
    private ClusterKey Key => LazyInitializer.EnsureInitialized(ref _key, () => (_options.ClusterSecret ?? ClusterSecret.CreateRandom()).DeriveKey(_manifest.Id));

    public ClusterStatus GetStatus()
    {
        ThrowIfRemoved();
        var nodes = GetNodes();
        return new ClusterStatus(Id, Name, ShardCount, ReplicationFactor, nodes.Where(n => n.Endpoint.Length > 0).Select(n => n.Endpoint).ToArray(), nodes, GetShards());
    }
}
