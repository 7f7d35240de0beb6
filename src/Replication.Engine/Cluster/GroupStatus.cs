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
    DateTimeOffset StateSince);
