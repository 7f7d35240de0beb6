using Replication.Engine.Ring;

namespace Replication.Simulation.Placement;

/// <summary>
/// Carries out planned membership steps on a simulated shard membership, as the real executor does
/// with one Raft membership change per step (a promoted learner is taken to have caught up), and
/// checks the planner's safety promises on every step. Pure and thread-safe.
/// </summary>
public static class MoveExecutor
{
    /// <summary>The membership after <paramref name="move"/>; throws when the step does not fit the
    /// membership (adding a node that holds the shard, promoting a node that is not a learner, ...).</summary>
    public static ShardPlacement Apply(ShardPlacement p, ShardMove move)
    {
        var voters = p.Voters.ToList();
        var learners = p.Learners.ToList();
        switch (move.Step)
        {
            case ShardMoveStep.AddLearner when !p.Holds(move.ToNode):
                learners.Add(move.ToNode);
                break;
            case ShardMoveStep.PromoteLearner when learners.Remove(move.ToNode):
                voters.Add(move.ToNode);
                break;
            case ShardMoveStep.RemoveVoter when voters.Remove(move.FromNode):
            case ShardMoveStep.RemoveLearner when learners.Remove(move.FromNode):
                break;
            default:
                throw new InvalidOperationException($"{move} does not fit {p}.");
        }
        return new ShardPlacement(p.Shard, voters, learners);
    }

    /// <summary>
    /// The safety promise a step broke, or null: after the step the shard's live voters are still a
    /// majority of its voters, and it has no fewer voters than before unless it has more than
    /// <paramref name="desired"/> wants (a replacement is a voter before the replica it replaces goes).
    /// </summary>
    public static string? Violation(ShardPlacement before, ShardPlacement after, ShardPlacement desired, IReadOnlyDictionary<int, RingNode> nodes, ShardMove move)
    {
        int live = after.Voters.Count(v => nodes.TryGetValue(v, out var n) && n.IsLive);
        if (live < after.Voters.Count / 2 + 1)
            return $"{move}: {after} keeps {live} live voters of {after.Voters.Count}, not a majority";
        if (after.Voters.Count < before.Voters.Count && after.Voters.Count < desired.Voters.Count)
            return $"{move}: {after} dropped to {after.Voters.Count} voters while the placement wants {desired.Voters.Count}";
        return null;
    }
}
