namespace Replication.Engine.Ring;

/// <summary>
/// One Raft membership change of a replica move; a move is AddLearner, PromoteLearner, then
/// RemoveVoter of the replica it replaces. Values are explicit and append-only (they may be
/// recorded in events and on the wire).
/// </summary>
public enum ShardMoveStep : long
{
    /// <summary>Add ToNode as a learner; it catches up (by snapshot) while the voters are unchanged.</summary>
    AddLearner = 0,

    /// <summary>Promote the learner on ToNode to voter. The caller promotes only once the learner has
    /// caught up with the leader's log; until then it waits, and the planner asks for the same step.</summary>
    PromoteLearner = 1,

    /// <summary>Remove the voter on FromNode; its replacement (if any) is already a voter.</summary>
    RemoveVoter = 2,

    /// <summary>Remove the learner on FromNode (a move that the placement no longer wants).</summary>
    RemoveLearner = 3,
}
