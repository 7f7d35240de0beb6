using Replication.Engine.Raft;

namespace Replication.Engine.Cluster;

/// <summary>
/// The next single-server membership change that moves a group from its current configuration toward
/// the desired one (pure, thread-safe). Order: add missing members as learners (they catch up from the
/// log or a snapshot without touching any quorum), then promote the learners that should vote (the core
/// refuses until one has caught up: the caller simply asks again later), then remove members that
/// should not be there, voters last and only once every desired voter votes (a quorum never shrinks
/// before it has grown); a voter that should be a learner is removed, then added back as a learner. One change at a time: the core refuses another while one is uncommitted.
/// </summary>
public static class MembershipPlan
{
    public static ConfChange? Next(IReadOnlyCollection<int> voters, IReadOnlyCollection<int> learners,
        IReadOnlyCollection<int> desiredVoters, IReadOnlyCollection<int> desiredLearners)
    {
        foreach (int id in desiredVoters.Concat(desiredLearners).OrderBy(x => x))
            if (!voters.Contains(id) && !learners.Contains(id)) return new ConfChange(ConfChangeType.AddLearner, id);
        foreach (int id in desiredVoters.OrderBy(x => x))
            if (learners.Contains(id)) return new ConfChange(ConfChangeType.PromoteLearner, id);
        foreach (int id in learners.OrderBy(x => x))
            if (!desiredVoters.Contains(id) && !desiredLearners.Contains(id)) return new ConfChange(ConfChangeType.RemoveNode, id);
        // A voter that should only learn (a node made learner-only after the ring had placed voters on it) is removed like
        // any other voter, and added back as a learner on the next pass (Raft has no demotion; it catches up from its log).
        if (desiredVoters.All(voters.Contains))
            foreach (int id in voters.OrderBy(x => x))
                if (!desiredVoters.Contains(id) && voters.Count > 1) return new ConfChange(ConfChangeType.RemoveNode, id);
        return null;
    }
}
