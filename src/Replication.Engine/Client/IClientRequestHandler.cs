using Replication.Engine.Cluster;

namespace Replication.Engine.Client;

/// <summary>
/// What a node's client session (<see cref="ClientSession"/>) calls to serve an authenticated client or another
/// node: a routing component that reaches every shard's leader from this node, so a request that lands on a
/// follower is still served by the leader. Implemented by <see cref="ClusterNode"/>. The contracts (results,
/// errors, timeouts) are those of the same-named <see cref="IReplicationCluster"/> members. Requests another node
/// forwarded arrive with <see cref="ForwardContext.IsForwarded"/> set, so the handler serves them itself or
/// refuses them (NotLeader), never forwarding twice. Implementations must be thread-safe: a session runs a
/// client's pipelined requests concurrently.
/// </summary>
public interface IClientRequestHandler
{
    Task<IReadOnlyList<WriteResult>> WriteAsync(IReadOnlyList<KeyWrite> writes, WriteConcern concern, TimeSpan timeout, CancellationToken cancellationToken);
    Task<ReplicationKey?> GetAsync(string key, ReadConsistency consistency, TimeSpan timeout, CancellationToken cancellationToken, long? maxLag = null);
    IAsyncEnumerable<ReplicationKey> ScanAsync(string prefix, ReadConsistency consistency, TimeSpan timeout, CancellationToken cancellationToken);
    /// <summary>Identity, shape, nodes and shards now.</summary>
    ClusterStatus GetStatus();
    Task<IReadOnlyList<ReplicationShard>> WaitForLeadersAsync(int? shard, TimeSpan timeout, CancellationToken cancellationToken);
    /// <summary>Stops a node. When it is the node serving this request, <paramref name="answer"/> (the session's answer to it)
    /// is called once the node stopped serving and before its listener and connections close (this request's among them).</summary>
    Task StopNodeAsync(int id, bool kill, Func<Task>? answer, CancellationToken cancellationToken);
    /// <summary>Starts a stopped node; only possible where its host process can run it
    /// (otherwise a <see cref="NotSupportedRemotelyException"/>).</summary>
    Task StartNodeAsync(int id, CancellationToken cancellationToken);
    /// <summary>Admits a node listening on <paramref name="endpoint"/> with <paramref name="role"/> and <paramref name="zone"/>; the same
    /// <paramref name="token"/> always gets the same id (and keeps the role and zone it has).</summary>
    Task<(int NodeId, Guid ClusterId, string Metadata)> JoinAsync(string endpoint, Guid token, NodeRole role, string? zone, CancellationToken cancellationToken);
    /// <summary>One page of one shard's keys in a hash range (served by a node that can confirm the read itself). More = the page is full.</summary>
    Task<(IReadOnlyList<ReplicationKey> Keys, bool More)> ScanShardAsync(int shard, ulong rangeStart, ulong rangeLast, string prefix, string? after, int limit,
        ReadConsistency consistency, TimeSpan timeout, CancellationToken cancellationToken);
    /// <summary>An administrative operation (Cluster/ClusterNode.Admin.cs): a JSON body and a blob in, the same out.</summary>
    Task<(string Json, ReadOnlyMemory<byte> Blob)> AdminAsync(string operation, int targetNode, string json, ReadOnlyMemory<byte> blob, CancellationToken cancellationToken);
}
