using Replication.Engine.Raft;

namespace Replication.Engine.Cluster;

/// <summary>
/// The next single-server membership change that moves a group from its current configuration toward
/// the desired one (pure, thread-safe). Order: add missing members as learners (they catch up from the
/// log or a snapshot without touching any quorum), then promote the learners that should vote (the core
/// refuses until one has caught up: the caller simply asks again later), then remove members that
/// should not be there (a voter that should be a learner included), voters last and only once every desired voter votes (a quorum never shrinks
/// before it has grown). One change at a time: the core refuses another while one is uncommitted.
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
        // A voter that should only learn (its node became learner-only after the ring had placed a voter on it, as
        // Add-ReplicationNode -Learner does: join, then the role) leaves too; the first step then adds it back as a
        // learner, since the core has no demotion. Were it skipped, the node would vote in that shard for good.
        if (desiredVoters.All(voters.Contains))
            foreach (int id in voters.OrderBy(x => x))
                if (!desiredVoters.Contains(id) && voters.Count > 1) return new ConfChange(ConfChangeType.RemoveNode, id);
        return null;
    }
}
