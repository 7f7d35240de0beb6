namespace Replication.Engine.Raft;

/// <summary>
/// A batch of work the core hands to its host. The host MUST process it in this order:
/// <list type="number">
/// <item>when <see cref="Snapshot"/> is set, install it first: make the state machine the snapshot's
/// data (the data the host received for the Snapshot message it stepped with that Index and Term;
/// for Index 0 there is no data, only the membership), store the metadata durably, and discard
/// every stored log entry (the log now starts after the snapshot);</item>
/// <item>persist <see cref="HardState"/> (when not null) and <see cref="Entries"/> atomically and durably;
/// entries replace any stored entries with index &gt;= Entries[0].Index;</item>
/// <item>only then send <see cref="Messages"/> (a vote or an append acknowledgment must never
/// leave before the state it promises is on disk). A message of type <see cref="MessageType.Snapshot"/>
/// is not sent as is: the host streams the snapshot data named by its Index/LogTerm to the
/// follower out of band, delivers the message itself only after all the data arrived and verified,
/// and reports the outcome with <see cref="RaftNode.ReportSnapshot"/> (exactly once per message,
/// failure included);</item>
/// <item>apply <see cref="CommittedEntries"/> to the state machine in order (they are already durable
/// in the local log, and follow the installed snapshot if any) and serve <see cref="ReadStates"/>
/// once their index is applied;</item>
/// <item>call <see cref="RaftNode.Advance"/> with this Ready.</item>
/// </list>
/// A Ready is immutable; the core does not touch its lists after handing them out.
/// </summary>
public sealed class Ready
{
    /// <summary>A snapshot to install before anything else in this Ready (see the order above); null when none.</summary>
    public SnapshotMetadata? Snapshot { get; init; }
    public HardState? HardState { get; init; }
    public IReadOnlyList<LogEntry> Entries { get; init; } = Array.Empty<LogEntry>();
    public IReadOnlyList<RaftMessage> Messages { get; init; } = Array.Empty<RaftMessage>();
    public IReadOnlyList<LogEntry> CommittedEntries { get; init; } = Array.Empty<LogEntry>();
    public IReadOnlyList<ReadState> ReadStates { get; init; } = Array.Empty<ReadState>();
    /// <summary>Set when leader or role changed since the previous Ready.</summary>
    public SoftState? SoftState { get; init; }

    public bool IsEmpty => Snapshot is null && HardState is null && Entries.Count == 0 && Messages.Count == 0
        && CommittedEntries.Count == 0 && ReadStates.Count == 0 && SoftState is null;
}
