namespace Replication.Engine.Raft;

/// <summary>
/// A batch of work the core hands to its host. The host MUST process it in this order:
/// <list type="number">
/// <item>persist <see cref="HardState"/> (when not null) and <see cref="Entries"/> atomically and durably;
/// entries replace any stored entries with index &gt;= Entries[0].Index;</item>
/// <item>only then send <see cref="Messages"/> (a vote or an append acknowledgment must never
/// leave before the state it promises is on disk);</item>
/// <item>apply <see cref="CommittedEntries"/> to the state machine in order (they are already durable
/// in the local log) and serve <see cref="ReadStates"/> once their index is applied;</item>
/// <item>call <see cref="RaftNode.Advance"/> with this Ready.</item>
/// </list>
/// A Ready is immutable; the core does not touch its lists after handing them out.
/// </summary>
public sealed class Ready
{
    public HardState? HardState { get; init; }
    public IReadOnlyList<LogEntry> Entries { get; init; } = Array.Empty<LogEntry>();
    public IReadOnlyList<RaftMessage> Messages { get; init; } = Array.Empty<RaftMessage>();
    public IReadOnlyList<LogEntry> CommittedEntries { get; init; } = Array.Empty<LogEntry>();
    public IReadOnlyList<ReadState> ReadStates { get; init; } = Array.Empty<ReadState>();
    /// <summary>Set when leader or role changed since the previous Ready.</summary>
    public SoftState? SoftState { get; init; }

    public bool IsEmpty => HardState is null && Entries.Count == 0 && Messages.Count == 0
        && CommittedEntries.Count == 0 && ReadStates.Count == 0 && SoftState is null;
}
