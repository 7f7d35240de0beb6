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

    /// <summary>
    /// Forced recovery of <paramref name="shard"/> after a permanent loss of quorum (-AllowDataLoss): the replica with the
    /// longest log among the nodes that answer (highest last term, then last index) becomes the shard's only voter by a
    /// rewrite of its own log, wins leadership, and the shard then grows back toward its placement on the nodes that run.
    /// Whatever the lost majority acknowledged after the survivor's last entry is gone: the result's
    /// SurvivorLastIndex/SurvivorLastTerm say where that window starts, LostEntries is null (unknown). Recorded as a
    /// ForcedRecovery event on the survivor. See Cluster/ClusterNode.ForcedRecovery.cs and NodeHost.ForcedRecovery.cs.
    /// </summary>
    /// <exception cref="ShardNotFoundException">No such shard.</exception>
    /// <exception cref="RemoteOperationException">ErrorId QuorumAvailable: a majority of the shard's voters answers
    /// (nothing done); NoSurvivor: no node that answers holds a replica; ForcedRecoveryConflict: the survivor kept
    /// changing (it led again, its configuration moved) until the timeout, nothing was rewritten.</exception>
    /// <exception cref="QuorumUnavailableException">The survivor was made the only voter but had not won its election
    /// within <paramref name="timeout"/> (it will).</exception>
    Task<ReplicationFailover> ForceFailoverAsync(int shard, TimeSpan timeout, CancellationToken cancellationToken);
}
