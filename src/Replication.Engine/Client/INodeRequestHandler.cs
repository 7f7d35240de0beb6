using Replication.Engine.Cluster;

namespace Replication.Engine.Client;

/// <summary>
/// What a node of a multi-process cluster serves to other nodes beyond <see cref="IClientRequestHandler"/>
/// (a handler that does not implement it refuses these requests). Thread-safe.
/// Forwarded requests reach the ordinary <see cref="IClientRequestHandler"/> members with
/// <see cref="ForwardContext.IsForwarded"/> set, so the handler serves them locally or refuses.
/// </summary>
public interface INodeRequestHandler
{
    /// <summary>Admits a node listening on <paramref name="endpoint"/>; the same <paramref name="token"/> always gets the same id.</summary>
    Task<(int NodeId, Guid ClusterId, string Metadata)> JoinAsync(string endpoint, Guid token, CancellationToken cancellationToken);

    /// <summary>One page of one shard (served by a node that can confirm the read itself). More = the page is full.</summary>
    Task<(IReadOnlyList<ReplicationKey> Keys, bool More)> ScanShardAsync(int shard, string prefix, string? after, int limit,
        ReadConsistency consistency, TimeSpan timeout, CancellationToken cancellationToken);
}
