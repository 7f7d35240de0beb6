using Replication.Engine.Cluster;

namespace Replication.Engine.Client;

/// <summary>Operator-driven failover over the administrative protocol (Cluster/ClusterNode.Failover.cs).</summary>
public partial class ClusterClient
{
    public async Task<ReplicationFailover> FailoverAsync(int shard, int? targetNode, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        if (!GetShards().Any(s => s.Id == shard)) throw new ShardNotFoundException(shard) { Target = shard };
        if (targetNode is int t && !GetNodes().Any(n => n.Id == t)) throw new NodeNotFoundException(t) { Target = t };
        var (result, _) = await AdminAsync<ReplicationFailover>(AdminOps.ShardFailover, 0, new FailoverArgs(shard, targetNode, (long)timeout.TotalMilliseconds), timeout, cancellationToken).ConfigureAwait(false);
        return result with { Cluster = Name };
    }

    public async Task<ReplicationFailover> ForceFailoverAsync(int shard, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        if (!GetShards().Any(s => s.Id == shard)) throw new ShardNotFoundException(shard) { Target = shard };
        var (result, _) = await AdminAsync<ReplicationFailover>(AdminOps.ShardForce, 0, new FailoverArgs(shard, null, (long)timeout.TotalMilliseconds), timeout, cancellationToken).ConfigureAwait(false);
        return result with { Cluster = Name };
    }
}
