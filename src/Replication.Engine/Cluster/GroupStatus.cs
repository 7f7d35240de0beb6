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
    /// <summary>The voters and learners as member ids in the membership committed here (the configuration at the commit
    /// index): the latest one (<see cref="MemberVoters"/>) takes effect on append and may yet be replaced by a new leader, so
    /// a node decides that it left a group on this one only (ClusterNode.Placement.cs, DropLeftGroupsAsync).</summary>
    public IReadOnlyList<int> CommittedMembers { get; init; } = Array.Empty<int>();
    /// <summary>On a leader: the member ids it has heard acknowledge an entry (match index above 0), itself included; empty
    /// elsewhere. A voter not among them may know no configuration yet and grant no vote (MembershipPlan).</summary>
    public IReadOnlyList<int> AcknowledgedMembers { get; init; } = Array.Empty<int>();
}
