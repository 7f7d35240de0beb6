using Replication.Engine.Raft;

namespace Replication.Engine.Storage;

/// <summary>
/// What <see cref="RaftLogStore.Load"/> recovers for one Raft group: its hard state
/// (<see cref="HardState.Empty"/> if none was saved) and its entries in ascending, contiguous
/// index order, each already checked against its CRC-32C. After compaction the first entry's
/// index is greater than 1. Immutable.
/// </summary>
public sealed record RaftGroupLog(HardState State, IReadOnlyList<LogEntry> Entries);
