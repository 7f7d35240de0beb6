using Replication.Engine.Raft;

namespace Replication.Engine.Storage;

/// <summary>
/// One group's share of a <see cref="RaftLogStore.Save"/> batch: the hard state to persist
/// (null: unchanged) and the entries to append. Entries must be contiguous and ascending.
/// Appending at index i first discards the group's stored entries at i and above: this is how
/// a follower replaces a suffix that conflicts with its leader's log (Raft paper, 5.3).
/// </summary>
public sealed record GroupWrite(int Group, HardState? State, IReadOnlyList<LogEntry> Entries);
