using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Replication.Engine.Storage;

/// <summary>
/// A snapshot installed in bounded steps over a shard that holds data (a replica that fell behind its leader's compacted log,
/// a node restarted after its log was compacted elsewhere), so that no step holds the node loop for long, and a crash at any
/// point leaves either the shard's old state (which its Raft log continues) or the complete new one. Installed in one
/// transaction, a 33 MB shard held its node's loop about a second (ring bench), freezing every group of the node.
/// <list type="number">
/// <item><b>Stage</b> (<see cref="StageSnapshotRows"/>, one chunk per transaction): the rows go to <c>kv_staged</c>, beside the
/// shard's own, which stay as they were. A marker (<c>snapshot_stage</c>, swapping = 0) records the install; a crash now
/// leaves the old state, and the next start drops the staged rows (<see cref="FinishStagedInstalls"/>).</item>
/// <item><b>Commit point</b> (<see cref="BeginStagedSwap"/>): one short transaction, made durable, sets swapping = 1 with the
/// snapshot's range. From here the new state is decided: a crash is rolled forward at the next start.</item>
/// <item><b>Swap</b> (<see cref="SwapStagedRows"/>, a bounded number of keys per transaction, in key order): in each key range,
/// the shard's rows the snapshot lacks are deleted, the snapshot's rows that differ are written, and the staged rows of the
/// range are dropped; the range's end is recorded with them (done_through), so a swap resumed after a crash starts where the
/// last committed step ended. Rows equal on both sides are not written again: a replica a little behind rewrites little.
/// The last step sets the applied index and term and the range and removes the marker, made durable (the caller discards
/// its Raft log next).</item>
/// </list>
/// The replica's group is paused from the first staged chunk until the end (NodeHost.Snapshots.cs): nothing applies entries
/// to the shard meanwhile. Loop thread only.
/// </summary>
internal sealed partial class ShardDb
{
    /// <summary>kv_staged's upsert as SQLite's own statement (parameters as <see cref="UpsertKvSql"/>); prepared at first use.</summary>
    private sqlite3_stmt? _stageRow;

    private const string UpsertStagedSql = """
        INSERT INTO kv_staged(shard, key, value, version, modified_index) VALUES(@shard, @key, @value, @version, @idx)
        ON CONFLICT(shard, key) DO UPDATE SET value = excluded.value, version = excluded.version, modified_index = excluded.modified_index
        """;

    /// <summary>
    /// Stages the rows of one snapshot chunk for <paramref name="shard"/> in their own transaction (not fsynced: WAL commits
    /// are kept in order, and until <see cref="BeginStagedSwap"/> a crash discards them all anyway). The
    /// <paramref name="first"/> chunk also clears what an earlier attempt staged and records the marker. The shard's own rows
    /// are not touched. On an exception (a malformed chunk included) nothing of the chunk was staged.
    /// </summary>
    public void StageSnapshotRows(int shard, long index, long term, ReadOnlyMemory<byte> chunk, bool first)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var tx = _conn.BeginTransaction();
        if (first)
        {
            Exec(tx, "DELETE FROM kv_staged WHERE shard = @s", ("@s", shard));
            Exec(tx, """
                INSERT INTO snapshot_stage(shard, idx, term, swapping, done_through, range_start, range_last) VALUES(@s, @i, @t, 0, NULL, NULL, NULL)
                ON CONFLICT(shard) DO UPDATE SET idx = excluded.idx, term = excluded.term, swapping = 0, done_through = NULL, range_start = NULL, range_last = NULL
                """, ("@s", shard), ("@i", index), ("@t", term));
        }
        var db = _conn.Handle!;
        if (_stageRow is null)
        {
            SqliteException.ThrowExceptionForRC(raw.sqlite3_prepare_v2(db, UpsertStagedSql, out sqlite3_stmt prepared), db);
            _stageRow = prepared;
        }
        WriteChunkRows(_stageRow, shard, chunk.Span);
        tx.Commit();
    }

    /// <summary>
    /// The commit point of a staged install: every row is staged; from the durable return of this call on, the install is
    /// completed (rolled forward) whatever happens. <paramref name="range"/> is the snapshot's hash range (see
    /// <see cref="RecordRange"/>), recorded when the swap ends.
    /// </summary>
    /// <exception cref="InvalidOperationException">No staged install of that snapshot is in progress for <paramref name="shard"/>.</exception>
    public void BeginStagedSwap(int shard, long index, long term, (ulong Start, ulong Last)? range)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        WithFullSync(() =>
        {
            using var tx = _conn.BeginTransaction();
            int changed = Exec(tx, """
                UPDATE snapshot_stage SET swapping = 1, range_start = @lo, range_last = @hi
                WHERE shard = @s AND idx = @i AND term = @t AND swapping = 0
                """, ("@s", shard), ("@i", index), ("@t", term),
                ("@lo", range is { } r ? Signed(r.Start) : null), ("@hi", range is { } q ? Signed(q.Last) : null));
            if (changed != 1)
                throw new InvalidOperationException($"No staged install of a snapshot of shard {shard} at {index} (term {term}) is in progress.");
            tx.Commit();
        });
    }

    /// <summary>
    /// One step of a staged install's swap: the next <paramref name="maxKeys"/> staged keys (and the shard's own keys up to the
    /// last of them), in one transaction. Returns true once the swap is complete: then the shard holds exactly the snapshot's
    /// rows, its applied index and term are the snapshot's, its range recorded, the marker gone, all durable.
    /// </summary>
    /// <exception cref="InvalidOperationException">No swap is in progress for <paramref name="shard"/>.</exception>
    public bool SwapStagedRows(int shard, int maxKeys)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var (index, term, doneThrough, range) = ReadStage(shard);
        // The range's end: the maxKeys-th staged key after where the last step ended; none (the rest) for the last step.
        string? through;
        using (var next = _conn.CreateCommand())
        {
            next.CommandText = doneThrough is null
                ? "SELECT key FROM kv_staged WHERE shard = @s ORDER BY key LIMIT 1 OFFSET @n"
                : "SELECT key FROM kv_staged WHERE shard = @s AND key > @after ORDER BY key LIMIT 1 OFFSET @n";
            next.Parameters.AddWithValue("@s", shard);
            next.Parameters.AddWithValue("@n", Math.Max(1, maxKeys) - 1);
            if (doneThrough is not null) next.Parameters.AddWithValue("@after", doneThrough);
            through = next.ExecuteScalar() as string;
        }
        bool last = through is null;
        string inRange = (doneThrough is null ? "" : " AND key > @after") + (last ? "" : " AND key <= @through");
        var args = new List<(string, object?)> { ("@s", shard) };
        if (doneThrough is not null) args.Add(("@after", doneThrough));
        if (!last) args.Add(("@through", through));
        void Step()
        {
            using var tx = _conn.BeginTransaction();
            // The shard's rows the snapshot lacks; then the snapshot's rows the shard lacks or holds otherwise.
            Exec(tx, "DELETE FROM kv WHERE shard = @s" + inRange
                + " AND NOT EXISTS(SELECT 1 FROM kv_staged n WHERE n.shard = @s AND n.key = kv.key)", args.ToArray());
            Exec(tx, "INSERT INTO kv(shard, key, value, version, modified_index) SELECT shard, key, value, version, modified_index FROM kv_staged n"
                + " WHERE shard = @s" + inRange
                + " AND NOT EXISTS(SELECT 1 FROM kv o WHERE o.shard = @s AND o.key = n.key AND o.version = n.version"
                + " AND o.modified_index = n.modified_index AND o.value = n.value)"
                + " ON CONFLICT(shard, key) DO UPDATE SET value = excluded.value, version = excluded.version, modified_index = excluded.modified_index",
                args.ToArray());
            Exec(tx, "DELETE FROM kv_staged WHERE shard = @s" + inRange, args.ToArray());
            if (last)
            {
                Exec(tx, "DELETE FROM snapshot_stage WHERE shard = @s", ("@s", shard));
                SetApplied(tx, shard, index, term);
                RecordRange(tx, shard, range);
            }
            else
            {
                Exec(tx, "UPDATE snapshot_stage SET done_through = @through WHERE shard = @s", ("@s", shard), ("@through", through));
            }
            CommitCounted(tx, shard, 0, shard);
        }
        if (last)
        {
            WithFullSync(Step);
            PublishRange(shard, range);
        }
        else
        {
            Step();
        }
        return last;
    }

    /// <summary>
    /// At a node's start, before any group is hosted: drops what staged installs a crash interrupted before their commit
    /// point (the shards keep their old state), and completes those past it. Returns the shards of each kind.
    /// </summary>
    public (IReadOnlyList<int> Dropped, IReadOnlyList<int> Completed) FinishStagedInstalls()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var stages = new List<(int Shard, bool Swapping)>();
        using (var list = _conn.CreateCommand())
        {
            list.CommandText = "SELECT shard, swapping FROM snapshot_stage ORDER BY shard";
            using var r = list.ExecuteReader();
            while (r.Read()) stages.Add((checked((int)r.GetInt64(0)), r.GetInt64(1) != 0));
        }
        var dropped = new List<int>();
        var completed = new List<int>();
        foreach (var (shard, swapping) in stages)
        {
            if (swapping)
            {
                while (!SwapStagedRows(shard, 10_000)) { }
                completed.Add(shard);
                continue;
            }
            DropStaged(shard);
            dropped.Add(shard);
        }
        return (dropped, completed);
    }

    /// <summary>Drops a staged install not yet past its commit point (the shard's own rows stay as they are). Loop thread only.</summary>
    public void DropStaged(int shard)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var tx = _conn.BeginTransaction();
        Exec(tx, "DELETE FROM kv_staged WHERE shard = @s", ("@s", shard));
        Exec(tx, "DELETE FROM snapshot_stage WHERE shard = @s AND swapping = 0", ("@s", shard));
        tx.Commit();
    }

    private (long Index, long Term, string? DoneThrough, (ulong Start, ulong Last)? Range) ReadStage(int shard)
    {
        using var cmd = _conn.CreateCommand();
        cmd.CommandText = "SELECT idx, term, done_through, range_start, range_last FROM snapshot_stage WHERE shard = @s AND swapping = 1";
        cmd.Parameters.AddWithValue("@s", shard);
        using var r = cmd.ExecuteReader();
        if (!r.Read()) throw new InvalidOperationException($"No staged install of shard {shard} is past its commit point.");
        return (r.GetInt64(0), r.GetInt64(1), r.IsDBNull(2) ? null : r.GetString(2),
            r.IsDBNull(3) ? null : (Unsigned(r.GetInt64(3)), Unsigned(r.GetInt64(4))));
    }

    private int Exec(SqliteTransaction tx, string sql, params (string Name, object? Value)[] parameters)
    {
        using var cmd = _conn.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        foreach (var (name, value) in parameters) cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return cmd.ExecuteNonQuery();
    }
}
