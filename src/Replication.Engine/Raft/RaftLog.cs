namespace Replication.Engine.Raft;

/// <summary>
/// The core's view of its log: every entry after <see cref="SnapshotIndex"/>, in memory, plus
/// how far it is known to be durable (<see cref="Stable"/>), committed and applied.
/// Invariants: SnapshotIndex &lt;= Applied &lt;= Committed; Applied &lt;= Stable &lt;= LastIndex.
/// Entries above <see cref="Stable"/> are "unstable": handed to the host in a Ready for persisting.
/// Not thread-safe (owned by one <see cref="RaftNode"/>).
/// </summary>
internal sealed class RaftLog
{
    private readonly List<LogEntry> _entries = new(); // _entries[i].Index == SnapshotIndex + 1 + i

    public RaftLog(IEnumerable<LogEntry> stored, long snapshotIndex = 0, long snapshotTerm = 0)
    {
        SnapshotIndex = snapshotIndex;
        SnapshotTerm = snapshotTerm;
        foreach (var e in stored)
        {
            if (e.Index != LastIndex + 1) throw new ArgumentException($"Stored log has a gap before index {e.Index}.");
            _entries.Add(e);
        }
        Stable = LastIndex;
        Committed = snapshotIndex;
        Applied = snapshotIndex;
    }

    /// <summary>Last index covered by the snapshot the log starts after (0 = none: the log starts at 1).</summary>
    public long SnapshotIndex { get; private set; }
    public long SnapshotTerm { get; private set; }

    /// <summary>Simulator mutant (<see cref="RaftMutation.FollowerKeepsConflicts"/>): never truncate. False in production.</summary>
    public bool KeepConflicts { get; init; }
    public long Committed { get; private set; }
    public long Applied { get; private set; }
    /// <summary>Highest index known to be persisted by the host.</summary>
    public long Stable { get; private set; }

    public long FirstIndex => SnapshotIndex + 1;
    public long LastIndex => SnapshotIndex + _entries.Count;
    public long LastTerm => Term(LastIndex);

    /// <summary>Term of the entry at <paramref name="index"/>; 0 when the index is beyond the log or unknown (compacted).</summary>
    public long Term(long index)
    {
        if (index == SnapshotIndex) return SnapshotTerm;
        if (index < SnapshotIndex || index > LastIndex) return 0;
        return _entries[(int)(index - FirstIndex)].Term;
    }

    public bool MatchTerm(long index, long term) => index >= SnapshotIndex && index <= LastIndex && Term(index) == term;

    /// <summary>Raft's "at least as up-to-date" rule (paper 5.4.1): compare last terms, then last indexes.</summary>
    public bool IsUpToDate(long lastIndex, long lastTerm) =>
        lastTerm > LastTerm || (lastTerm == LastTerm && lastIndex >= LastIndex);

    /// <summary>Entries in [lo, hi], at most <paramref name="maxBytes"/> (at least one entry when any).</summary>
    public IReadOnlyList<LogEntry> Slice(long lo, long hi, int maxBytes)
    {
        if (lo > hi) return Array.Empty<LogEntry>();
        if (lo < FirstIndex || hi > LastIndex) throw new ArgumentOutOfRangeException(nameof(lo), $"[{lo},{hi}] outside [{FirstIndex},{LastIndex}]");
        var result = new List<LogEntry>();
        long size = 0;
        for (long i = lo; i <= hi; i++)
        {
            var e = _entries[(int)(i - FirstIndex)];
            size += e.Size;
            if (result.Count > 0 && size > maxBytes) break;
            result.Add(e);
        }
        return result;
    }

    /// <summary>Appends entries at the end (leader path). Indexes must continue the log.</summary>
    public void Append(IEnumerable<LogEntry> entries)
    {
        foreach (var e in entries)
        {
            if (e.Index != LastIndex + 1) throw new InvalidOperationException($"Append at {e.Index} does not continue the log ending at {LastIndex}.");
            _entries.Add(e);
        }
    }

    /// <summary>
    /// Follower path (paper 5.3): given entries that follow a matching (prevIndex, prevTerm), drop
    /// those already present, truncate at the first conflicting entry and append the rest.
    /// Returns the index of the last new entry (prevIndex + entries.Count).
    /// Truncating a committed entry would break Leader Completeness; it is an invariant violation.
    /// </summary>
    public long MaybeAppend(long prevIndex, IReadOnlyList<LogEntry> entries)
    {
        long lastNew = prevIndex + entries.Count;
        foreach (var e in entries)
        {
            if (e.Index <= SnapshotIndex) continue; // already compacted into the snapshot, hence committed and equal
            if (e.Index <= LastIndex && Term(e.Index) == e.Term) continue;
            if (e.Index <= LastIndex && KeepConflicts) continue;
            if (e.Index <= LastIndex)
            {
                if (e.Index <= Committed)
                    throw new InvalidOperationException($"Conflict at committed index {e.Index} (committed {Committed}): log matching violated.");
                _entries.RemoveRange((int)(e.Index - FirstIndex), (int)(LastIndex - e.Index + 1));
                if (Stable >= e.Index) Stable = e.Index - 1; // the host must rewrite from here
            }
            _entries.Add(e);
        }
        return lastNew;
    }

    /// <summary>
    /// Fast backtracking (etcd findConflictByTerm): the largest index &lt;= <paramref name="index"/>
    /// whose term is &lt;= <paramref name="term"/>. A leader or follower can skip a whole term of
    /// mismatching entries in one round trip instead of one entry per round trip.
    /// </summary>
    public long FindConflictByTerm(long index, long term)
    {
        if (index > LastIndex) index = LastIndex;
        while (index > SnapshotIndex && Term(index) > term) index--;
        return index;
    }

    public void CommitTo(long index)
    {
        if (index <= Committed) return;
        if (index > LastIndex) throw new InvalidOperationException($"Commit {index} beyond last index {LastIndex}.");
        Committed = index;
    }

    /// <summary>Restores the commit index from persisted hard state (never beyond the log).</summary>
    public void RestoreCommit(long commit) => Committed = Math.Max(Committed, Math.Min(commit, LastIndex));

    public void SetApplied(long index)
    {
        if (index < Applied) return;
        Applied = Math.Min(index, Committed);
    }

    /// <summary>
    /// Log compaction (paper 7): drops every entry up to <paramref name="index"/>, which the state
    /// machine has applied and the host has captured in a snapshot. Its term is remembered so the
    /// log-matching check still works at the boundary.
    /// </summary>
    public void Compact(long index)
    {
        if (index <= SnapshotIndex) return;
        if (index > Applied) throw new ArgumentOutOfRangeException(nameof(index), $"Compaction to {index} beyond applied {Applied}.");
        long term = Term(index);
        _entries.RemoveRange(0, (int)(index - SnapshotIndex));
        SnapshotIndex = index;
        SnapshotTerm = term;
    }

    /// <summary>
    /// Installs a snapshot from the leader (paper 7, InstallSnapshot receiver steps 6–8): the whole
    /// log is discarded and restarts after (<paramref name="index"/>, <paramref name="term"/>), which
    /// is committed and (once the host installs the data) applied.
    /// </summary>
    public void Restore(long index, long term)
    {
        if (index <= Committed) throw new InvalidOperationException($"Restore to {index} at or below commit {Committed}.");
        _entries.Clear();
        SnapshotIndex = index;
        SnapshotTerm = term;
        Committed = index;
        Applied = index;
        Stable = index;
    }

    /// <summary>Entries not yet reported durable, for the next Ready.</summary>
    public IReadOnlyList<LogEntry> Unstable() => Stable >= LastIndex ? Array.Empty<LogEntry>() : Slice(Stable + 1, LastIndex, int.MaxValue);

    /// <summary>The host persisted entries up to <paramref name="index"/> with <paramref name="term"/>; ignored if the log changed since.</summary>
    public void StableTo(long index, long term)
    {
        if (index > Stable && MatchTerm(index, term)) Stable = index;
    }

    /// <summary>Committed, durable entries not yet applied, up to <paramref name="maxBytes"/>.</summary>
    public IReadOnlyList<LogEntry> NextCommitted(int maxBytes)
    {
        long hi = Math.Min(Committed, Stable);
        return Applied >= hi ? Array.Empty<LogEntry>() : Slice(Applied + 1, hi, maxBytes);
    }
}
