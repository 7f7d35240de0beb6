using Replication.Engine.Cluster;

namespace Replication.Engine.Client;

/// <summary>
/// What a node's client session (<see cref="ClientSession"/>) calls to serve an authenticated
/// client: a routing component that reaches every shard's leader from this node, so a request that
/// lands on a follower is still served by the leader. For an embedded cluster this is the
/// <see cref="EmbeddedCluster"/> itself (EmbeddedCluster.Clients.cs). The contracts (results,
/// errors, timeouts) are those of the same-named <see cref="IReplicationCluster"/> members.
/// Implementations must be thread-safe: a session runs a client's pipelined requests concurrently.
/// </summary>
public interface IClientRequestHandler
{
    Task<IReadOnlyList<WriteResult>> WriteAsync(IReadOnlyList<KeyWrite> writes, WriteConcern concern, TimeSpan timeout, CancellationToken cancellationToken);
    Task<ReplicationKey?> GetAsync(string key, ReadConsistency consistency, TimeSpan timeout, CancellationToken cancellationToken);
    IAsyncEnumerable<ReplicationKey> ScanAsync(string prefix, ReadConsistency consistency, TimeSpan timeout, CancellationToken cancellationToken);
    /// <summary>Identity, shape, nodes and shards now.</summary>
    ClusterStatus GetStatus();
    Task<IReadOnlyList<ReplicationShard>> WaitForLeadersAsync(int? shard, TimeSpan timeout, CancellationToken cancellationToken);
    Task StopNodeAsync(int id, bool kill, CancellationToken cancellationToken);
    /// <summary>Starts a stopped node; only possible where its host process can run it
    /// (otherwise a <see cref="NotSupportedRemotelyException"/>).</summary>
    Task StartNodeAsync(int id, CancellationToken cancellationToken);
}
