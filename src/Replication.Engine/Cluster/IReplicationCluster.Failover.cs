namespace Replication.Engine.Cluster;

/// <summary>Operator-driven failover (see README, "Failover runbook").</summary>
public partial interface IReplicationCluster
{
    /// <summary>
    /// Planned switchover of <paramref name="shard"/>: its leader hands leadership to <paramref name="targetNode"/> (a
    /// running voter of the shard), or without one to the running, not suspended voter whose log is furthest along, by
    /// Raft leader transfer: the target is brought level with the leader's log first, then told to take over at once.
    /// Nothing acknowledged is lost; writes issued meanwhile wait for the new leader. Recorded as a Switchover event.
    /// When the target already leads, nothing moves (Duration 0).
    /// </summary>
    /// <exception cref="ShardNotFoundException">No such shard.</exception>
    /// <exception cref="NodeNotFoundException">No such target node.</exception>
    /// <exception cref="RemoteOperationException">ErrorId FailoverTargetInvalid: the target is not a running voter of the
    /// shard; NoFailoverTarget: no other voter of the shard is running.</exception>
    /// <exception cref="QuorumUnavailableException">No leader, or the transfer did not complete, within <paramref name="timeout"/>.</exception>
    Task<ReplicationFailover> FailoverAsync(int shard, int? targetNode, TimeSpan timeout, CancellationToken cancellationToken);
}
