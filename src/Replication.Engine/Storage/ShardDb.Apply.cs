using Microsoft.Data.Sqlite;
using Replication.Engine.Raft;

namespace Replication.Engine.Storage;

/// <summary>The write side of the state machine: applying committed entries. Node loop thread only.</summary>
internal sealed partial class ShardDb
{
    /// <summary>
    /// Applies committed entries of <paramref name="shard"/> in ONE transaction that also sets
    /// the shard's applied index and term to the last entry's. Entries at or below the current
    /// applied index are skipped and produce no result (replay after a restart is idempotent);
    /// the rest must continue the applied index without a gap. Each result lists the outcome of
    /// the entry's ops in order; an entry without ops (empty Data: a leader's no-op; or a
    /// ConfChange) gets an empty list but still advances the applied index.
    ///
    /// Ops apply in order, each seeing the effect of the ones before it; an op whose condition
    /// fails changes nothing and does not stop the others (see <see cref="KvOpResult"/>).
    /// Conditions: null = unconditional; 0 = the key must be absent (for a delete this makes it
    /// a successful no-op when absent and a rejection when present: the simplest rule
    /// consistent with put); n &gt; 0 = the key's current version must be n. A delete of an
    /// absent key without condition succeeds with Existed = false.
    /// </summary>
    /// <exception cref="StorageCorruptException">An entry's data is not a valid command; nothing of the call is applied.</exception>
    /// <exception cref="ArgumentException">The entries leave a gap after the applied index; nothing is applied.</exception>
    public IReadOnlyList<EntryApplyResult> Apply(int shard, IReadOnlyList<LogEntry> entries)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (entries.Count == 0) return [];

        // In a batch (BeginApplyBatch) the entries join its transaction, and what a commit publishes waits for its commit.
        var batch = _batch;
        using var own = batch is null ? _conn.BeginTransaction() : null;
        var tx = batch ?? own!;
        _selectApplied.Transaction = tx;
        _upsertApplied.Transaction = tx;
        _selectVersion.Transaction = tx;
        _upsertKv.Transaction = tx;
        _deleteKv.Transaction = tx;

        long applied = 0;
        _selectApplied.Parameters[0].Value = shard;
        using (var r = _selectApplied.ExecuteReader())
        {
            if (r.Read()) applied = r.GetInt64(0);
        }

        long lastIndex = applied, lastTerm = 0;
        var results = new List<EntryApplyResult>();
        // Ranges as this batch leaves them: a split applies to the entries after it in the same batch; published after the commit.
        var ranges = _batchRanges ?? _ranges;
        long added = 0; // keys created minus keys deleted, for the key count
        long changed = 0; // rows written or deleted, for the WAL checkpointer
        var split = new List<int>();
        foreach (var e in entries)
        {
            if (e.Index <= lastIndex) continue;
            if (e.Index != lastIndex + 1)
                throw new ArgumentException(
                    $"Shard {shard}: entry {e.Index} does not follow the applied index {lastIndex}; committed entries must be applied without gaps.",
                    nameof(entries));

            IReadOnlyList<KvOpResult> opResults = [];
            if (e.Type == EntryType.Normal && ShardCommand.IsShardCommand(e.Data))
            {
                ShardCommand command;
                try { command = ShardCommand.Decode(e.Data); }
                catch (StorageCorruptException ex) { throw new StorageCorruptException($"State machine '{_filePath}', shard {shard}: entry {e.Index}: {ex.Message}") { Target = e.Index }; }
                if (SplitApplies(ranges, shard, command))
                {
                    bool founded = ApplySplit(tx, shard, command);
                    split.Add(shard);
                    var next = new Dictionary<int, (ulong, ulong)>(ranges) { [shard] = (command.LeftStart, command.LeftLast) };
                    if (founded)
                    {
                        split.Add(command.NewShard);
                        next[command.NewShard] = (command.RightStart, command.RightLast);
                    }
                    ranges = next;
                }
            }
            else if (e.Type == EntryType.Normal && e.Data.Length > 0)
            {
                IReadOnlyList<KvOp> ops;
                try
                {
                    ops = KvCommand.Decode(e.Data);
                }
                catch (StorageCorruptException ex)
                {
                    throw new StorageCorruptException($"State machine '{_filePath}', shard {shard}: entry {e.Index}: {ex.Message}") { Target = e.Index };
                }
                var list = new KvOpResult[ops.Count];
                for (int i = 0; i < ops.Count; i++)
                {
                    var result = list[i] = ApplyOp(ranges, shard, e.Index, ops[i]);
                    if (result.Applied && result.Existed != (ops[i].Type != KvOpType.Delete)) added += result.Existed ? -1 : 1;
                    if (result.Applied) changed++;
                }
                opResults = list;
            }
            results.Add(new EntryApplyResult(e.Index, opResults));
            lastIndex = e.Index;
            lastTerm = e.Term;
        }

        if (lastIndex != applied)
        {
            _upsertApplied.Parameters[0].Value = shard;
            _upsertApplied.Parameters[1].Value = lastIndex;
            _upsertApplied.Parameters[2].Value = lastTerm;
            _upsertApplied.ExecuteNonQuery();
        }
        if (batch is not null)
        {
            _batchRanges = ranges;
            _batchCounts[shard] = _batchCounts.GetValueOrDefault(shard) + added;
            _batchRecount.AddRange(split);
            _batchChanged += changed;
            return results;
        }
        CommitCounted(tx, shard, added, split.ToArray());
        _ranges = ranges; // published after the commit: readers never see a range ahead of the rows
        _checkpointer.NoteWritten(changed);
        return results;
    }

    // ---- apply batches: one transaction for a loop pass's applies of every group ----

    /// <summary>The open batch's transaction (<see cref="BeginApplyBatch"/>), null when none. Loop thread only.</summary>
    private SqliteTransaction? _batch;
    /// <summary>What the open batch's commit publishes: the ranges its splits leave (null: none), key count changes per shard,
    /// shards to count again, rows changed (for the checkpointer).</summary>
    private Dictionary<int, (ulong Start, ulong Last)>? _batchRanges;
    private readonly Dictionary<int, long> _batchCounts = new();
    private readonly List<int> _batchRecount = new();
    private long _batchChanged;

    /// <summary>
    /// Opens ONE transaction that the following <see cref="Apply"/> calls join, until <see cref="CommitApplyBatch"/> (or
    /// <see cref="RollbackApplyBatch"/>): the node loop applies a pass's committed entries of every group in it. Why: a
    /// transaction per group wrote the applied-index page (8 KiB) and a commit per group and pass, on every replica; with
    /// four groups taking writes, more WAL pages than the keys written. Readers see nothing of a batch before its commit
    /// (key counts, split ranges included). An Apply that throws leaves the batch to be rolled back by the caller, whole:
    /// the applies before it in the batch are lost with it. No other write may run on the store while a batch is open.
    /// </summary>
    /// <exception cref="InvalidOperationException">A batch is already open.</exception>
    public void BeginApplyBatch()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_batch is not null) throw new InvalidOperationException("An apply batch is already open.");
        _batch = _conn.BeginTransaction();
    }

    /// <summary>Commits the open batch and publishes what it changed (no-op without one). On an exception nothing of the
    /// batch is stored (it is rolled back) and the batch is closed.</summary>
    public void CommitApplyBatch()
    {
        if (_batch is not { } tx) return;
        try
        {
            CommitCounted(tx, _batchCounts, _batchRecount);
            if (_batchRanges is { } ranges) _ranges = ranges; // after the commit: readers never see a range ahead of the rows
            _checkpointer.NoteWritten(_batchChanged);
        }
        catch
        {
            RollbackApplyBatch();
            throw;
        }
        CloseBatch();
    }

    /// <summary>Rolls the open batch back (no-op without one): nothing of it is stored or published.</summary>
    public void RollbackApplyBatch()
    {
        if (_batch is not { } tx) return;
        try { tx.Rollback(); }
        catch (SqliteException) { } // SQLite may have rolled it back itself (SQLITE_FULL in the middle of a statement)
        catch (InvalidOperationException) { } // ...or the commit that failed already ended it
        CloseBatch();
    }

    private void CloseBatch()
    {
        _batch?.Dispose();
        _batch = null;
        _batchRanges = null;
        _batchCounts.Clear();
        _batchRecount.Clear();
        _batchChanged = 0;
    }

    /// <summary>
    /// True when a split of <paramref name="shard"/> takes effect given the <paramref name="ranges"/> applied before it:
    /// the shard still owns exactly the two halves together (never split: it owns what the map gave it, which the split
    /// was computed from). A second proposal of the same split, or one computed from an older range, changes nothing.
    /// Decided from the shard's own range only, which is part of its replicated state, so every replica decides the same.
    /// (It also asked that the new shard's id be unused in <paramref name="ranges"/>, a node-wide fact: a node that held a
    /// replica of the new shard, copied by snapshot, before it replayed the old shard's log through the split skipped the
    /// split, and its replica of the old shard kept the right half's rows and owned every key. Ids never repeat: the
    /// metadata leader takes each by compare-and-set, ClusterNode.Split.cs.)
    /// </summary>
    public static bool SplitApplies(IReadOnlyDictionary<int, (ulong Start, ulong Last)> ranges, int shard, ShardCommand split) =>
        shard != split.NewShard
        && (!ranges.TryGetValue(shard, out var r) || (r.Start == split.LeftStart && r.Last == split.RightLast));

    /// <summary>
    /// A split, inside the apply transaction: the rows of the right range leave the old shard, and it records its new
    /// range, so its later entries with keys of the right range are refused (<see cref="KvOpResult.WrongShard"/>). That
    /// part is the old shard's replicated state and happens on every replica. The new shard is founded here (the rows
    /// move to it, its range and its founding index <see cref="ShardCommand.SplitFoundingIndex"/> are recorded, so a
    /// restarted node knows it exists) only when this node is one of its founding replicas and holds nothing of it elsewhere (the owner's predicate, <see cref="KvStore.ForgoSplitFounding"/>)
    /// and this store holds nothing of it yet; otherwise its replica here already
    /// has a state of its own, at or past its founding (copied by snapshot before this node replayed the old shard's
    /// log through the split), which the split must not touch: moving rows into it would bring back keys it deleted
    /// since. Returns whether the new shard was founded here.
    /// </summary>
    private bool ApplySplit(SqliteTransaction tx, int shard, ShardCommand c)
    {
        bool found = !_foundsNoneOf(c.NewShard) && !HoldsAnythingOf(tx, c.NewShard);
        var steps = new List<(string, (string, object)[])>();
        if (found)
            steps.Add(("INSERT INTO kv(shard, key, value, version, modified_index) SELECT @new, key, value, version, modified_index FROM kv WHERE shard = @s AND khash(key) BETWEEN @lo AND @hi",
                [("@new", c.NewShard), ("@s", shard), ("@lo", Signed(c.RightStart)), ("@hi", Signed(c.RightLast))]));
        steps.Add(("DELETE FROM kv WHERE shard = @s AND khash(key) BETWEEN @lo AND @hi", [("@s", shard), ("@lo", Signed(c.RightStart)), ("@hi", Signed(c.RightLast))]));
        steps.Add(("INSERT OR REPLACE INTO shard_range(shard, start, last) VALUES(@s, @lo, @hi)", [("@s", shard), ("@lo", Signed(c.LeftStart)), ("@hi", Signed(c.LeftLast))]));
        if (found)
        {
            steps.Add(("INSERT INTO shard_range(shard, start, last) VALUES(@s, @lo, @hi)", [("@s", c.NewShard), ("@lo", Signed(c.RightStart)), ("@hi", Signed(c.RightLast))]));
            // The new shard's state is its founding snapshot: a leader sends it as that snapshot to a replica that lacks it.
            steps.Add(("INSERT INTO applied(shard, idx, term) VALUES(@new, @idx, @idx)", [("@new", c.NewShard), ("@idx", ShardCommand.SplitFoundingIndex)]));
        }
        foreach (var (sql, parameters) in steps)
        {
            using var cmd = _conn.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = sql;
            foreach (var (name, value) in parameters) cmd.Parameters.AddWithValue(name, value);
            cmd.ExecuteNonQuery();
        }
        return found;
    }

    /// <summary>
    /// Founds <paramref name="c"/>'s new shard in this (new, empty) file from the right half of <paramref name="shard"/>'s rows in
    /// the file at <paramref name="sourcePath"/>, as they are committed there just before the split entry applies: the rows,
    /// the new shard's range and its founding index (<see cref="ShardCommand.SplitFoundingIndex"/>), in one transaction made
    /// durable before this returns. The layout of a file per shard (KvStore.Apply) does this before the old shard applies
    /// the split, which then only drops those rows from its own file: a crash between the two leaves the new shard's file
    /// complete and the old shard's log to replay the split, which founds nothing the second time (the file exists).
    /// </summary>
    public void FoundFromSplit(string sourcePath, int shard, ShardCommand c)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        SqliteSetup.Execute(_conn, $"ATTACH DATABASE '{sourcePath.Replace("'", "''")}' AS src;");
        try
        {
            WithFullSync(() =>
            {
                using var tx = _conn.BeginTransaction();
                foreach (var (sql, parameters) in new (string, (string, object)[])[]
                {
                    ("INSERT INTO kv(shard, key, value, version, modified_index) SELECT @new, key, value, version, modified_index FROM src.kv WHERE shard = @s AND khash(key) BETWEEN @lo AND @hi ORDER BY key",
                        [("@new", c.NewShard), ("@s", shard), ("@lo", Signed(c.RightStart)), ("@hi", Signed(c.RightLast))]),
                    ("INSERT INTO shard_range(shard, start, last) VALUES(@new, @lo, @hi)", [("@new", c.NewShard), ("@lo", Signed(c.RightStart)), ("@hi", Signed(c.RightLast))]),
                    ("INSERT INTO applied(shard, idx, term) VALUES(@new, @idx, @idx)", [("@new", c.NewShard), ("@idx", ShardCommand.SplitFoundingIndex)]),
                })
                {
                    using var cmd = _conn.CreateCommand();
                    cmd.Transaction = tx;
                    cmd.CommandText = sql;
                    foreach (var (name, value) in parameters) cmd.Parameters.AddWithValue(name, value);
                    cmd.ExecuteNonQuery();
                }
                CommitCounted(tx, c.NewShard, 0, c.NewShard);
            });
        }
        finally
        {
            SqliteSetup.Execute(_conn, "DETACH DATABASE src;");
        }
        LoadRanges();
    }

    /// <summary>Whether this store holds anything of <paramref name="shard"/>: an applied index, a range, rows, or an install under way.</summary>
    private bool HoldsAnythingOf(SqliteTransaction tx, int shard)
    {
        using var cmd = _conn.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = """
            SELECT EXISTS(SELECT 1 FROM applied WHERE shard = @s) OR EXISTS(SELECT 1 FROM shard_range WHERE shard = @s)
                OR EXISTS(SELECT 1 FROM kv WHERE shard = @s) OR EXISTS(SELECT 1 FROM snapshot_install WHERE shard = @s)
                OR EXISTS(SELECT 1 FROM snapshot_stage WHERE shard = @s) OR EXISTS(SELECT 1 FROM kv_staged WHERE shard = @s)
            """;
        cmd.Parameters.AddWithValue("@s", shard);
        return (long)cmd.ExecuteScalar()! != 0;
    }

    private KvOpResult ApplyOp(IReadOnlyDictionary<int, (ulong Start, ulong Last)> ranges, int shard, long index, KvOp op)
    {
        // A key of the part this shard split off (the entry was proposed with an older map): not applied, the
        // proposer retries it on the shard that owns it now.
        if (!Owns(ranges, shard, op.Key)) return KvOpResult.NotOwned;
        _selectVersion.Parameters[0].Value = shard;
        _selectVersion.Parameters[1].Value = op.Key;
        long current = _selectVersion.ExecuteScalar() is long v ? v : 0;
        bool existed = current != 0;

        if (op.ExpectedVersion is { } expected && expected != current)
            return new KvOpResult(Applied: false, Version: 0, Existed: existed, ActualVersion: current);

        if (op.Type is KvOpType.Put or KvOpType.Restore)
        {
            long version = op.Type == KvOpType.Restore ? op.Version!.Value : current + 1;
            _upsertKv.Parameters[0].Value = shard;
            _upsertKv.Parameters[1].Value = op.Key;
            _upsertKv.Parameters[2].Value = op.Value;
            _upsertKv.Parameters[3].Value = version;
            _upsertKv.Parameters[4].Value = index;
            _upsertKv.ExecuteNonQuery();
            return new KvOpResult(Applied: true, Version: version, Existed: existed, ActualVersion: current);
        }

        if (existed)
        {
            _deleteKv.Parameters[0].Value = shard;
            _deleteKv.Parameters[1].Value = op.Key;
            _deleteKv.ExecuteNonQuery();
        }
        return new KvOpResult(Applied: true, Version: 0, Existed: existed, ActualVersion: current);
    }
}
