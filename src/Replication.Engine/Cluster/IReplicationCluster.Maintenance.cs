namespace Replication.Engine.Cluster;

/// <summary>Maintenance of a node (see README, "Failover runbook").</summary>
public partial interface IReplicationCluster
{
    /// <summary>
    /// Suspends node <paramref name="id"/> for maintenance (<paramref name="suspended"/> true) or resumes it: the mark is
    /// kept in the replicated metadata (ReplicationNode.Suspended; it survives restarts). A suspended node hands its
    /// leaderships to other running voters and does not campaign, but still votes and replicates; once resumed, the leader
    /// balancer may bring leaderships back. With <paramref name="drain"/>, waits until the node leads no shard. Returns
    /// the node afterwards. Recorded as NodeSuspended / NodeResumed events by the node.
    /// </summary>
    /// <exception cref="NodeNotFoundException">No such node.</exception>
    /// <exception cref="QuorumUnavailableException">The metadata group could not record the mark within <paramref name="timeout"/>.</exception>
    /// <exception cref="RemoteOperationException">ErrorId DrainTimeout: the node still led a shard after <paramref name="timeout"/>.</exception>
    Task<ReplicationNode> SetNodeSuspendedAsync(int id, bool suspended, bool drain, TimeSpan timeout, CancellationToken cancellationToken);
}
