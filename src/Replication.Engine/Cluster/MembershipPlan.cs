using Replication.Engine.Raft;
using Replication.Engine.Transport;

namespace Replication.Engine.Cluster;

/// <summary>
/// The next single-server membership change that moves a group from its current configuration toward
/// the desired one (pure, thread-safe). Order: add missing members as learners (they catch up from the
/// log or a snapshot without touching any quorum), then promote the learners that should vote (the core
/// refuses until one has caught up: the caller simply asks again later), then remove members that
/// should not be there, voters last and only once every desired voter votes (a quorum never shrinks
/// before it has grown); a voter that should be a learner is removed, then added back as a learner (the same replica, its
/// state intact); a stale replica of a node wanted under a new member id is removed first. One change at a time: the core
/// refuses another while one is uncommitted.
/// <para>A voter is removed only when the voters left have a majority among <c>acknowledged</c> (the members the leader has
/// heard acknowledge an entry: they hold a configuration, so they vote). A replica that joined empty (a split group's
/// founding member whose old-shard replica skipped the split) knows no configuration and grants no vote until a leader
/// reaches it; removing another voter before then left a group of two whose quorum needed it, and once its leader lost
/// leadership nobody could be elected again (found by the simulator, seed 1817). The removal waits for the next pass.</para>
/// </summary>
public static class MembershipPlan
{
    /// <param name="acknowledged">Members the leader has heard acknowledge an entry (match index above 0), itself included;
    /// null: not known (every voter counts).</param>
    public static ConfChange? Next(IReadOnlyCollection<int> voters, IReadOnlyCollection<int> learners,
        IReadOnlyCollection<int> desiredVoters, IReadOnlyCollection<int> desiredLearners, IReadOnlyCollection<int>? acknowledged = null)
    {
        // Whether removing voter id leaves voters that can elect a leader without a replica that cannot vote yet.
        bool CanRemove(int id) => !voters.Contains(id) || acknowledged is null
            || voters.Count(v => v != id && acknowledged.Contains(v)) > (voters.Count - 1) / 2;
        // Members are replicas (ReplicaIds): a member whose node is wanted under another id (the node was named anew while
        // its old replica was still in the group) goes first, so that a group never holds two replicas of one node and the
        // node, which hosts one replica of a group at a time, can drop the old one before it hosts the new one.
        var wanted = desiredVoters.Concat(desiredLearners).ToArray();
        foreach (int id in learners.Concat(voters.Count > 1 ? voters : Array.Empty<int>()).OrderBy(x => x))
            if (!wanted.Contains(id) && wanted.Any(w => ReplicaIds.NodeOf(w) == ReplicaIds.NodeOf(id)))
                return CanRemove(id) ? new ConfChange(ConfChangeType.RemoveNode, id) : null;
        foreach (int id in wanted.OrderBy(x => x))
            if (!voters.Contains(id) && !learners.Contains(id)) return new ConfChange(ConfChangeType.AddLearner, id);
        foreach (int id in desiredVoters.OrderBy(x => x))
            if (learners.Contains(id)) return new ConfChange(ConfChangeType.PromoteLearner, id);
        foreach (int id in learners.OrderBy(x => x))
            if (!desiredVoters.Contains(id) && !desiredLearners.Contains(id)) return new ConfChange(ConfChangeType.RemoveNode, id);
        // A voter that should only learn (a node made learner-only after the ring had placed voters on it) is removed like
        // any other voter, and added back as a learner on the next pass (Raft has no demotion; it catches up from its log).
        if (desiredVoters.All(voters.Contains))
            foreach (int id in voters.OrderBy(x => x))
                if (!desiredVoters.Contains(id) && voters.Count > 1) return CanRemove(id) ? new ConfChange(ConfChangeType.RemoveNode, id) : null;
        return null;
    }
}
