namespace Replication.Engine.Ring;

/// <summary>
/// The replicas of one shard: its voters and its learners (non-voting replicas: asynchronous copies,
/// or new replicas catching up before promotion). Used both for the current membership of a shard's
/// Raft group and for the ring's desired placement (which has no learners). Immutable; equality is by
/// value (the shard, and the voters and learners as sets).
/// </summary>
public sealed class ShardPlacement : IEquatable<ShardPlacement>
{
    /// <summary>Voters and learners are distinct node ids, and no node is both.</summary>
    public ShardPlacement(int shard, IReadOnlyList<int> voters, IReadOnlyList<int>? learners = null)
    {
        ArgumentNullException.ThrowIfNull(voters);
        learners ??= Array.Empty<int>();
        if (voters.Distinct().Count() != voters.Count || learners.Distinct().Count() != learners.Count || voters.Intersect(learners).Any())
            throw new ArgumentException($"Shard {shard}: voters and learners must be distinct nodes.");
        Shard = shard;
        Voters = voters.ToArray();
        Learners = learners.ToArray();
    }

    /// <summary>The shard id.</summary>
    public int Shard { get; }

    /// <summary>Voting replicas; for a ring placement, in ring order (the walk's first node first).</summary>
    public IReadOnlyList<int> Voters { get; }

    /// <summary>Non-voting replicas.</summary>
    public IReadOnlyList<int> Learners { get; }

    /// <summary>True when <paramref name="node"/> holds a voter or a learner of the shard.</summary>
    public bool Holds(int node) => Voters.Contains(node) || Learners.Contains(node);

    public bool Equals(ShardPlacement? other) =>
        other is not null && Shard == other.Shard
        && Voters.Count == other.Voters.Count && !Voters.Except(other.Voters).Any()
        && Learners.Count == other.Learners.Count && !Learners.Except(other.Learners).Any();

    public override bool Equals(object? obj) => Equals(obj as ShardPlacement);

    public override int GetHashCode()
    {
        int h = Shard;
        foreach (int v in Voters) h ^= v * 0x2c1b3c6d;   // order-independent, as equality is
        foreach (int l in Learners) h ^= l * 0x297a2d39;
        return h;
    }

    /// <summary>"3: voters 1,4,7 learners 9".</summary>
    public override string ToString() =>
        $"{Shard}: voters {string.Join(',', Voters)}" + (Learners.Count > 0 ? $" learners {string.Join(',', Learners)}" : "");
}
