namespace Replication.Engine.Ring;

/// <summary>
/// One step of moving a shard's replica from one node to another (or of adding or removing one),
/// as planned by <see cref="PlacementPlanner"/>: the data behind ReplicationMove. Immutable.
/// </summary>
/// <param name="Shard">The shard.</param>
/// <param name="FromNode">The node whose replica goes away, or 0 when the move only adds a replica
/// (or, for an AddLearner or PromoteLearner step, when the replica it will replace is not known yet).</param>
/// <param name="ToNode">The node that receives the replica, or 0 when the move only removes one.</param>
/// <param name="Step">The membership change to make now.</param>
/// <param name="Reason">Why the replica moves.</param>
public sealed record ShardMove(int Shard, int FromNode, int ToNode, ShardMoveStep Step, MoveReason Reason)
{
    /// <summary>"shard 7: 3 -> 9 AddLearner (NodeDraining)".</summary>
    public override string ToString() => $"shard {Shard}: {FromNode} -> {ToNode} {Step} ({Reason})";
}
