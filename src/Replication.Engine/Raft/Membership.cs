namespace Replication.Engine.Raft;

/// <summary>
/// One configuration of a group: its voters and learners, sorted, disjoint. Immutable: a change
/// returns a new instance. <see cref="Apply"/> is total (a change that makes no sense leaves the
/// configuration as it is) so that every replica derives the same configuration from the same log;
/// the leader refuses such changes before they reach the log (RaftNode.Membership.cs).
/// </summary>
internal sealed class Membership
{
    public static readonly Membership Empty = new(Array.Empty<int>(), Array.Empty<int>());

    private Membership(int[] voters, int[] learners)
    {
        Voters = voters;
        Learners = learners;
    }

    public IReadOnlyList<int> Voters { get; }
    public IReadOnlyList<int> Learners { get; }
    public bool IsEmpty => Voters.Count == 0 && Learners.Count == 0;

    public static Membership From(IEnumerable<int> voters, IEnumerable<int> learners)
    {
        var v = voters.Distinct().OrderBy(x => x).ToArray();
        var l = learners.Distinct().Except(v).OrderBy(x => x).ToArray();
        return new Membership(v, l);
    }

    public bool IsVoter(int id) => Voters.Contains(id);
    public bool IsLearner(int id) => Learners.Contains(id);
    public bool IsMember(int id) => IsVoter(id) || IsLearner(id);

    /// <summary>The configuration after <paramref name="cc"/>; this one when the change makes no sense here.</summary>
    public Membership Apply(ConfChange cc)
    {
        int id = cc.NodeId;
        switch (cc.Type)
        {
            case ConfChangeType.AddVoter when !IsMember(id):
                return From(Voters.Append(id), Learners);
            case ConfChangeType.AddLearner when !IsMember(id):
                return From(Voters, Learners.Append(id));
            case ConfChangeType.RemoveNode when IsMember(id):
                return From(Voters.Where(v => v != id), Learners.Where(l => l != id));
            case ConfChangeType.PromoteLearner when IsLearner(id):
                return From(Voters.Append(id), Learners.Where(l => l != id));
            default:
                return this;
        }
    }

    /// <summary>Why <paramref name="cc"/> makes no sense here; null when it does.</summary>
    public string? Refusal(ConfChange cc)
    {
        int id = cc.NodeId;
        if (id == 0) return "node id 0 is reserved";
        return cc.Type switch
        {
            ConfChangeType.AddVoter or ConfChangeType.AddLearner when IsMember(id) => $"{id} is already a member",
            ConfChangeType.RemoveNode when !IsMember(id) => $"{id} is not a member",
            ConfChangeType.RemoveNode when IsVoter(id) && Voters.Count == 1 => "cannot remove the last voter",
            ConfChangeType.PromoteLearner when !IsLearner(id) => $"{id} is not a learner",
            ConfChangeType.AddVoter or ConfChangeType.AddLearner or ConfChangeType.RemoveNode or ConfChangeType.PromoteLearner => null,
            _ => $"unknown change type {cc.Type}",
        };
    }

    public SnapshotMetadata ToMetadata(long index, long term) => new(index, term, Voters, Learners);

    public override string ToString() => $"voters [{string.Join(",", Voters)}] learners [{string.Join(",", Learners)}]";
}
