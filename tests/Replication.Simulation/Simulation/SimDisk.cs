using Replication.Engine.Raft;

namespace Replication.Simulation.Simulation;

/// <summary>
/// What survives a crash of one simulated node: the Raft hard state and log (the product's
/// raft.db) and the state machine's last checkpoint (state.db). Honours the Ready contract: a
/// write replaces stored entries from its first index on, and is atomic (hard state and entries
/// together, as RaftLogStore.Save's one transaction): a crash in the middle of one is modelled by
/// the host as the whole write or none of it. With compaction, the log starts after a snapshot whose data is the
/// checkpoint (as the product's state.db is its own snapshot). Not thread-safe.
/// </summary>
public sealed class SimDisk
{
    private readonly List<LogEntry> _entries = new();
    /// <summary>Indexes of the ConfChange entries in <see cref="_entries"/>, ascending (to derive the membership cheaply).</summary>
    private readonly List<long> _confIndexes = new();

    /// <param name="bootstrapVoters">The membership the node starts with when nothing is stored: the group's founders, or none for a joining node.</param>
    public SimDisk(IReadOnlyList<int> bootstrapVoters)
    {
        BootstrapVoters = bootstrapVoters;
    }

    public IReadOnlyList<int> BootstrapVoters { get; }

    public HardState HardState { get; private set; } = HardState.Empty;
    /// <summary>The stored log: the entries after <see cref="Snapshot"/>.</summary>
    public IReadOnlyList<LogEntry> Entries => _entries;
    public KvMachine Checkpoint { get; set; } = new();
    /// <summary>Metadata of the snapshot the stored log starts after (null: none, the log starts at 1).
    /// Its data is <see cref="Checkpoint"/>, which is always at or past its index.</summary>
    public SnapshotMetadata? Snapshot { get; private set; }

    private long Base => Snapshot?.Index ?? 0;

    /// <summary>Log compaction: the checkpoint is durable at or past <paramref name="snapshot"/>'s index; drop the entries it covers.</summary>
    public void Compact(SnapshotMetadata snapshot)
    {
        if (snapshot.Index <= Base) return;
        if (Checkpoint.Applied < snapshot.Index) throw new InvalidOperationException($"compaction to {snapshot.Index} past the checkpoint at {Checkpoint.Applied}");
        _entries.RemoveAll(e => e.Index <= snapshot.Index);
        _confIndexes.RemoveAll(i => i <= snapshot.Index);
        Snapshot = snapshot;
    }

    /// <summary>A joining node learned the group's membership from the leader's first append (Ready.Snapshot at index 0): record it.</summary>
    public void RecordMembership(SnapshotMetadata membership)
    {
        if (Base == 0) Snapshot = membership;
    }

    /// <summary>
    /// The voters of the latest configuration in the durable log (the one a node restarted from this
    /// disk would use): the snapshot's (or the bootstrap) membership, then every ConfChange entry.
    /// Derived independently of the core, with the same total rules (a change that makes no sense is a no-op).
    /// </summary>
    public IReadOnlySet<int> Voters()
    {
        var voters = new SortedSet<int>(Snapshot?.Voters ?? BootstrapVoters);
        var learners = new SortedSet<int>(Snapshot?.Learners ?? Array.Empty<int>());
        foreach (long i in _confIndexes)
        {
            if (!ConfChange.TryDecode(_entries[(int)(i - Base - 1)].Data, out var cc)) continue;
            bool member = voters.Contains(cc.NodeId) || learners.Contains(cc.NodeId);
            switch (cc.Type)
            {
                case ConfChangeType.AddVoter when !member: voters.Add(cc.NodeId); break;
                case ConfChangeType.AddLearner when !member: learners.Add(cc.NodeId); break;
                case ConfChangeType.RemoveNode: voters.Remove(cc.NodeId); learners.Remove(cc.NodeId); break;
                case ConfChangeType.PromoteLearner when learners.Remove(cc.NodeId): voters.Add(cc.NodeId); break;
            }
        }
        return voters;
    }

    /// <summary>Installs a snapshot received from the leader: state machine first, then the log is discarded (Ready contract).</summary>
    public void Install(SnapshotMetadata snapshot, KvMachine data)
    {
        Checkpoint = data.Clone();
        Snapshot = snapshot;
        _entries.Clear();
        _confIndexes.Clear();
    }

    /// <summary>Drops the stored entries after <paramref name="index"/> (never below the snapshot): only the
    /// <see cref="Mutant.ForcedRecoveryFromCommitted"/> mutant's rewrite does this outside a write.</summary>
    public void TruncateAfter(long index)
    {
        long keep = Math.Max(0, index - Base);
        if (keep >= _entries.Count) return;
        _entries.RemoveRange((int)keep, _entries.Count - (int)keep);
        _confIndexes.RemoveAll(i => i > Math.Max(index, Base));
    }

    /// <summary>Index and term of the last durable entry (the snapshot's when the log is empty).</summary>
    public (long Index, long Term) Last => _entries.Count == 0 ? (Base, Snapshot?.Term ?? 0) : (_entries[^1].Index, _entries[^1].Term);

    /// <summary>Whether the durable log holds the entry (index, term); an index covered by the snapshot is committed, hence held.</summary>
    public bool Has(long index, long term) =>
        index >= 1 && (index <= Base || (index <= Base + _entries.Count && _entries[(int)(index - Base - 1)].Term == term));

    /// <summary>A complete, durable write of one Ready. <paramref name="dropVote"/>: the VoteNotPersisted mutant.</summary>
    public void Save(HardState? hs, IReadOnlyList<LogEntry> entries, bool dropVote)
    {
        if (hs is { } h) HardState = dropVote ? h with { Vote = 0 } : h;
        Append(entries, entries.Count);
    }

    private void Append(IReadOnlyList<LogEntry> entries, int count)
    {
        if (count == 0) return;
        long first = entries[0].Index;
        long keep = first - 1 - Base; // entries stored before the first one written
        if (keep < _entries.Count) _entries.RemoveRange((int)keep, _entries.Count - (int)keep);
        if (keep > _entries.Count) throw new InvalidOperationException($"write at {first} leaves a gap after {_entries.Count}");
        _confIndexes.RemoveAll(i => i >= first);
        for (int i = 0; i < count; i++)
        {
            _entries.Add(entries[i]);
            if (entries[i].Type == EntryType.ConfChange) _confIndexes.Add(entries[i].Index);
        }
    }
}
