namespace Replication.Engine.Raft;

/// <summary>
/// What the core knows of a state-machine snapshot (paper 7, thesis 5): the last log entry it
/// covers and the membership in force at that entry. The state-machine data itself never passes
/// through the core; the host stores it beside this metadata and streams it to followers.
/// <see cref="Index"/> 0 is the group's initial, empty state (used when a joining node learns the
/// group's bootstrap membership: there is no data to install, only the membership to record).
/// Immutable.
/// </summary>
public sealed record SnapshotMetadata(long Index, long Term, IReadOnlyList<int> Voters, IReadOnlyList<int> Learners)
{
    public override string ToString() => $"snapshot {Index}@{Term} voters [{string.Join(",", Voters)}] learners [{string.Join(",", Learners)}]";
}
