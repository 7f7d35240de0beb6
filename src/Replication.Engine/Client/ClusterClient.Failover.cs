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
        await AwaitLeaderShownAsync(result, cancellationToken).ConfigureAwait(false);
        return result with { Cluster = Name };
    }

    public async Task<ReplicationFailover> ForceFailoverAsync(int shard, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        if (!GetShards().Any(s => s.Id == shard)) throw new ShardNotFoundException(shard) { Target = shard };
        var (result, _) = await AdminAsync<ReplicationFailover>(AdminOps.ShardForce, 0, new FailoverArgs(shard, null, (long)timeout.TotalMilliseconds), timeout, cancellationToken).ConfigureAwait(false);
        await AwaitLeaderShownAsync(result, cancellationToken).ConfigureAwait(false);
        return result with { Cluster = Name };
    }

    /// <summary>How long a failover's answer waits, at most, for the cluster's shard view to show its new leader.</summary>
    private static readonly TimeSpan LeaderShownWait = TimeSpan.FromSeconds(2);

    /// <summary>
    /// After a failover: waits (up to <see cref="LeaderShownWait"/>) until the shard view this client reads shows the new
    /// leader, or a later one. The view names whoever reports leading the shard, and the new leader's report reaches the
    /// node this client asks up to a status period later, so `Get-ReplicationShard` right after `Invoke-ReplicationFailover`
    /// showed the shard with no leader (an operator try at stop 32). Past the bound it returns anyway: the failover is done.
    /// </summary>
    private async Task AwaitLeaderShownAsync(ReplicationFailover result, CancellationToken cancellationToken)
    {
        if (result.NewLeader == 0) return;
        var deadline = System.Diagnostics.Stopwatch.GetTimestamp() + (long)(LeaderShownWait.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
        while (System.Diagnostics.Stopwatch.GetTimestamp() < deadline)
        {
            try
            {
                var view = (await StatusAsync(cancellationToken).ConfigureAwait(false)).Shards.FirstOrDefault(s => s.Id == result.Shard);
                if (view is null || (view.Leader != 0 && (view.Leader == result.NewLeader || view.Term > result.Term))) return;
            }
            catch (ReplicationException) { return; } // the view is not the failover's business: it succeeded
            await Task.Delay(TimeSpan.FromMilliseconds(50), cancellationToken).ConfigureAwait(false);
        }
    }
}
