namespace Replication.Engine.Ring;

/// <summary>
/// A node as the ring sees it. Immutable.
/// </summary>
/// <param name="Id">The node id (positive); its tokens derive from it (<see cref="HashRing.TokenPosition"/>).</param>
/// <param name="Zone">Failure-domain label (rack, availability zone) or null. Replicas of a shard go to
/// distinct zones first; nodes without a label share one unnamed zone. Compared ordinally.</param>
/// <param name="State">Whether it receives replicas, counts for quorum and may lead (<see cref="RingNodeState"/>).</param>
/// <param name="LearnerOnly">The node holds only non-voting learner replicas (asynchronous copies): the
/// ring places no voters on it, and the move planner leaves the learners it holds alone.</param>
public sealed record RingNode(int Id, string? Zone = null, RingNodeState State = RingNodeState.Running, bool LearnerOnly = false)
{
    /// <summary>True when the ring places voters on the node: not learner-only, and Running, Down or Suspended.</summary>
    public bool HoldsVoters => !LearnerOnly && State is RingNodeState.Running or RingNodeState.Down or RingNodeState.Suspended;

    /// <summary>True when the node is up and votes: Running, Draining or Suspended.</summary>
    public bool IsLive => State is RingNodeState.Running or RingNodeState.Draining or RingNodeState.Suspended;

    /// <summary>True when data may be copied to the node now (a learner added): Running only.</summary>
    public bool CanReceive => State == RingNodeState.Running;

    /// <summary>True when the node may lead shards it votes in: Running only.</summary>
    public bool CanLead => State == RingNodeState.Running && !LearnerOnly;
}
