using Replication.Engine.Raft;

namespace Replication.Simulation.Simulation;

/// <summary>
/// What survives a crash of one simulated node: the Raft hard state and log (the product's
/// raft.db) and the state machine's last checkpoint (state.db). Honours the Ready contract: a
/// write replaces stored entries from its first index on. <see cref="SavePrefix"/> models a crash in
/// the middle of a write. Extension point: snapshots and compaction (a stored snapshot and a first
/// index) belong here once the core produces them. Not thread-safe.
/// </summary>
public sealed class SimDisk
{
    private readonly List<LogEntry> _entries = new();

    public HardState HardState { get; private set; } = HardState.Empty;
    public IReadOnlyList<LogEntry> Entries => _entries;
    public KvMachine Checkpoint { get; set; } = new();

    /// <summary>Index and term of the last durable entry ((0, 0) when the log is empty).</summary>
    public (long Index, long Term) Last => _entries.Count == 0 ? (0, 0) : (_entries[^1].Index, _entries[^1].Term);

    /// <summary>Whether the durable log holds the entry at <paramref name="index"/> with <paramref name="term"/>.</summary>
    public bool Has(long index, long term) => index >= 1 && index <= _entries.Count && _entries[(int)index - 1].Term == term;

    /// <summary>No membership change is stored: the node still uses the group's bootstrap voters.</summary>
    public bool HasBootstrapMembership => true;

    /// <summary>A complete, durable write of one Ready. <paramref name="dropVote"/>: the VoteNotPersisted mutant.</summary>
    public void Save(HardState? hs, IReadOnlyList<LogEntry> entries, bool dropVote)
    {
        if (hs is { } h) HardState = dropVote ? h with { Vote = 0 } : h;
        Append(entries, entries.Count);
    }

    /// <summary>A write cut short by a crash: maybe the hard state, and only the first <paramref name="count"/> entries.</summary>
    public void SavePrefix(HardState? hs, IReadOnlyList<LogEntry> entries, int count, bool withHardState, bool dropVote)
    {
        if (withHardState && hs is { } h) HardState = dropVote ? h with { Vote = 0 } : h;
        if (count > 0) Append(entries, count);
    }

    private void Append(IReadOnlyList<LogEntry> entries, int count)
    {
        if (count == 0) return;
        long first = entries[0].Index;
        long keep = first - 1; // entries are indexed from 1 with no compaction
        if (keep < _entries.Count) _entries.RemoveRange((int)keep, _entries.Count - (int)keep);
        if (keep > _entries.Count) throw new InvalidOperationException($"write at {first} leaves a gap after {_entries.Count}");
        for (int i = 0; i < count; i++) _entries.Add(entries[i]);
    }
}
