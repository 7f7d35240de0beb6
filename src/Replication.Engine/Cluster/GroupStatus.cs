using Replication.Engine.Transport;
using Replication.Engine.Raft;

namespace Replication.Engine.Cluster;

/// <summary>
/// An immutable snapshot of one Raft group on one node, published by the node loop after each
/// iteration so status queries never touch the core from another thread.
/// </summary>
internal sealed record GroupStatus(
    int Shard,
    RaftRole Role,
    int Leader,
    long Term,
    long LastIndex,
    long Committed,
    long Applied,
    long SnapshotIndex,
    IReadOnlyList<int> Voters,
    IReadOnlyList<int> Learners,
    IReadOnlyDictionary<int, long> MatchIndexes,
    DateTimeOffset? LastContact,
    string StateReason,
    DateTimeOffset StateSince)
{
    /// <summary>This replica's member id (<see cref="ReplicaIds"/>); the other fields name nodes.</summary>
    public int Member { get; init; }
    /// <summary>The voters and learners as member ids, for the membership plan only.</summary>
    public IReadOnlyList<int> MemberVoters { get; init; } = Array.Empty<int>();
    public IReadOnlyList<int> MemberLearners { get; init; } = Array.Empty<int>();
}
