using Replication.Engine.Raft;

namespace Replication.Engine.Storage;

/// <summary>
/// What <see cref="RaftLogStore.Load"/> recovers for one Raft group: its hard state
/// (<see cref="HardState.Empty"/> if none was saved), the metadata of the snapshot its log was
/// compacted to (null if never), and its entries in ascending, contiguous index order starting
/// right after the snapshot, each already checked against its CRC-32C. Immutable.
/// </summary>
public sealed record RaftGroupLog(HardState State, IReadOnlyList<LogEntry> Entries, SnapshotMetadata? Snapshot = null);
