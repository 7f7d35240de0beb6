using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Replication.Engine.Storage;

/// <summary>Snapshots of a shard: taking one (any thread), installing one and making the store durable (node loop thread only).</summary>
internal sealed partial class ShardDb
{
    /// <summary>A batched install is storing rows (<see cref="PauseAutoCheckpoint"/>). Loop thread only.</summary>
    private bool _checkpointsPaused;

    /// <summary>
    /// For a stretch of large writes (a snapshot's rows stored in batches, NodeHost.Snapshots.cs): the writer stops
    /// checkpointing the WAL itself (not even at its <see cref="WalCheckpointer.WriterAutoCheckpointPages"/> valve), and the
    /// store's checkpointing thread (<see cref="WalCheckpointer"/>) does it at each <see cref="NudgeCheckpoint"/>, so the
    /// copying and fsyncing of those pages into state.db happen beside the loop, not in the middle of its transactions. Until
    /// <see cref="ResumeAutoCheckpoint"/>; idempotent. Loop thread only.
    /// </summary>
    public void PauseAutoCheckpoint()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_checkpointsPaused) return;
        _checkpointsPaused = true;
        SqliteSetup.Execute(_conn, "PRAGMA wal_autocheckpoint=0;");
    }

    /// <summary>Tells the checkpointing thread a batch was committed (no-op unless paused). Loop thread only.</summary>
    public void NudgeCheckpoint()
    {
        if (_checkpointsPaused) _checkpointer.Nudge();
    }

    /// <summary>The writer's auto-checkpoint threshold in pages (0: off, while paused). For tests.</summary>
    internal long WriterAutoCheckpointPages => SqliteSetup.ExecuteScalarLong(_conn, null, "PRAGMA wal_autocheckpoint;");

    /// <summary>Asks the checkpointing thread for a pass that syncs what was committed so far (WalCheckpointer.Request); the
    /// ticket for <see cref="CheckpointDone"/>. 0 (done at once) unless paused. Loop thread only.</summary>
    public long RequestCheckpoint() => _checkpointsPaused ? _checkpointer.Request() : 0;

    /// <summary>Whether the checkpoint of <paramref name="ticket"/> has ended, waiting up to <paramref name="wait"/> for it
    /// (true unless paused). Loop thread only.</summary>
    public bool CheckpointDone(long ticket, TimeSpan wait) => !_checkpointsPaused || _checkpointer.IsDone(ticket, wait);

    /// <summary>Ends <see cref="PauseAutoCheckpoint"/>: the writer's valve is back (no-op unless paused). Loop thread only.</summary>
    public void ResumeAutoCheckpoint()
    {
        if (!_checkpointsPaused) return;
        _checkpointsPaused = false;
        if (!_disposed) SqliteSetup.Execute(_conn, $"PRAGMA wal_autocheckpoint={WalCheckpointer.WriterAutoCheckpointPages.ToString(System.Globalization.CultureInfo.InvariantCulture)};");
    }

    /// <summary>Opens a consistent view of <paramref name="shard"/> (see <see cref="ShardSnapshotReader"/>). Thread-safe.</summary>
    public ShardSnapshotReader OpenSnapshot(int shard)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new ShardSnapshotReader(_readerConnectionString, shard);
    }

    /// <summary>
    /// Replaces everything <paramref name="shard"/> holds with the rows of <paramref name="chunks"/> (a snapshot
    /// taken on another replica, <see cref="SnapshotChunkCodec"/>) and sets its applied index and term, and its hash range to <paramref name="range"/>
    /// (see <see cref="RecordRange"/>), in ONE transaction made
    /// durable before this returns: the caller discards its Raft log next, so the state machine
    /// must never roll back behind it (the writer otherwise runs at synchronous=NORMAL).
    /// On an exception (a malformed chunk included) nothing changed.
    /// </summary>
    public void InstallSnapshot(int shard, long index, long term, (ulong Start, ulong Last)? range, IEnumerable<byte[]> chunks)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        WithFullSync(() =>
        {
            using var tx = _conn.BeginTransaction();
            using (var clear = _conn.CreateCommand())
            {
                clear.Transaction = tx;
                clear.CommandText = "DELETE FROM kv WHERE shard = @shard";
                clear.Parameters.AddWithValue("@shard", shard);
                clear.ExecuteNonQuery();
            }
            foreach (var chunk in chunks) UpsertChunk(shard, chunk);
            SetApplied(tx, shard, index, term);
            RecordRange(tx, shard, range);
            CommitCounted(tx, shard, 0, shard);
        });
        PublishRange(shard, range);
    }

    /// <summary>
    /// Writes one batch of a snapshot installed in batches (a fresh replica: NodeHost.Snapshots.cs), the rows of one
    /// encoded <paramref name="chunk"/>, in its own transaction, so the node loop can serve its other groups between batches. The <paramref name="first"/> batch of an
    /// install also clears the shard's rows and applied index and records the marker (<c>snapshot_install</c>) in the same
    /// transaction: from then until <see cref="CompleteSnapshotInstall"/> the rows are partial, and
    /// <see cref="DiscardPartialInstalls"/> (node start) removes them. Not fsynced: WAL commits are kept in order, so a
    /// crash that loses a batch loses every later one too, never the marker before them. On an exception (a malformed chunk
    /// included) nothing of the batch was stored. Loop thread only.
    /// </summary>
    public void InstallSnapshotRows(int shard, long index, long term, ReadOnlyMemory<byte> chunk, bool first)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var tx = _conn.BeginTransaction();
        if (first)
        {
            foreach (var sql in new[]
            {
                "DELETE FROM kv WHERE shard = @s",
                "DELETE FROM applied WHERE shard = @s",
                "INSERT INTO snapshot_install(shard, idx, term) VALUES(@s, @i, @t) ON CONFLICT(shard) DO UPDATE SET idx = excluded.idx, term = excluded.term",
            })
                ExecuteForShard(tx, sql, shard, index, term);
        }
        UpsertChunk(shard, chunk.Span);
        CommitCounted(tx, shard, 0, shard);
    }

    /// <summary>
    /// Writes the rows of one snapshot chunk into <paramref name="shard"/> inside the writer's open transaction (a row
    /// already there is replaced). Each key and value is bound as the UTF-8 text the chunk holds, with SQLite's own
    /// statement API: decoded into strings and bound through ADO.NET, every byte was converted twice more (UTF-8 to UTF-16
    /// and back) and every row allocated, on the loop thread of a node whose other groups wait meanwhile.
    /// </summary>
    /// <exception cref="StorageCorruptException">The chunk is malformed.</exception>
    private void UpsertChunk(int shard, ReadOnlySpan<byte> chunk)
    {
        var db = _conn.Handle!;
        if (_installRow is null)
        {
            SqliteException.ThrowExceptionForRC(raw.sqlite3_prepare_v2(db, UpsertKvSql, out sqlite3_stmt prepared), db);
            _installRow = prepared;
        }
        WriteChunkRows(_installRow, shard, chunk);
    }

    /// <summary>Runs <paramref name="statement"/> (an upsert of parameters 1-5: shard, key, value, version, modified index)
    /// once per row of <paramref name="chunk"/>, the key and value bound as the chunk's UTF-8 bytes.</summary>
    /// <exception cref="StorageCorruptException">The chunk is malformed.</exception>
    private void WriteChunkRows(sqlite3_stmt statement, int shard, ReadOnlySpan<byte> chunk)
    {
        var db = _conn.Handle!;
        SnapshotChunkCodec.ForEachRow(chunk, (key, value, version, modifiedIndex) =>
        {
            raw.sqlite3_bind_int64(statement, 1, shard);
            BindText(statement, 2, key);
            BindText(statement, 3, value);
            raw.sqlite3_bind_int64(statement, 4, version);
            raw.sqlite3_bind_int64(statement, 5, modifiedIndex);
            int rc = raw.sqlite3_step(statement);
            raw.sqlite3_reset(statement);
            if (rc != raw.SQLITE_DONE) SqliteException.ThrowExceptionForRC(rc, db);
        });
    }

    /// <summary>Binds UTF-8 text; an empty one as the empty string (a span of no bytes would be bound as NULL).</summary>
    private static void BindText(sqlite3_stmt statement, int index, ReadOnlySpan<byte> utf8)
    {
        if (utf8.IsEmpty) raw.sqlite3_bind_text(statement, index, "");
        else raw.sqlite3_bind_text(statement, index, utf8);
    }

    /// <summary>
    /// Records the hash range a snapshot of <paramref name="shard"/> carries inside <paramref name="tx"/>, with the rows and the
    /// applied index it goes with (published by <see cref="PublishRange"/> after the commit). A snapshot without a range
    /// (a shard never split, or one sent by a node of an earlier version, which sent none) leaves the range recorded here
    /// as it was: a shard's range only ever narrows, so for a shard never split there is none, and for an older sender it
    /// is the best this node knows (the replica then behaves as every replica did before snapshots carried ranges).
    /// </summary>
    private void RecordRange(SqliteTransaction tx, int shard, (ulong Start, ulong Last)? range)
    {
        if (range is not { } r) return;
        using var cmd = _conn.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "INSERT OR REPLACE INTO shard_range(shard, start, last) VALUES(@s, @lo, @hi)";
        cmd.Parameters.AddWithValue("@s", shard);
        cmd.Parameters.AddWithValue("@lo", Signed(r.Start));
        cmd.Parameters.AddWithValue("@hi", Signed(r.Last));
        cmd.ExecuteNonQuery();
    }

    /// <summary>Makes a range <see cref="RecordRange"/> committed visible to <see cref="Owns"/> and <see cref="RangeOf"/> (after the
    /// commit, as Apply does: readers never see a range ahead of the rows). Loop thread only.</summary>
    private void PublishRange(int shard, (ulong Start, ulong Last)? range)
    {
        if (range is { } r) _ranges = new Dictionary<int, (ulong Start, ulong Last)>(_ranges) { [shard] = r };
    }

    /// <summary>Records <paramref name="shard"/>'s applied index and term inside <paramref name="tx"/>.</summary>
    private void SetApplied(SqliteTransaction tx, int shard, long index, long term)
    {
        _upsertApplied.Transaction = tx;
        _upsertApplied.Parameters[0].Value = shard;
        _upsertApplied.Parameters[1].Value = index;
        _upsertApplied.Parameters[2].Value = term;
        _upsertApplied.ExecuteNonQuery();
    }

    /// <summary>
    /// Ends an install begun by <see cref="InstallSnapshotRows"/>: sets the shard's applied index and term and the hash
    /// <paramref name="range"/> the snapshot carries (see <see cref="RecordRange"/>) and removes the
    /// marker, in one transaction made durable before this returns (the caller discards its Raft log next, as after
    /// <see cref="InstallSnapshot"/>). Until then the marker stands for the whole install: a crash before discards the
    /// rows, and the range was not recorded. Loop thread only.
    /// </summary>
    /// <exception cref="InvalidOperationException">No install of that snapshot is in progress for <paramref name="shard"/>.</exception>
    public void CompleteSnapshotInstall(int shard, long index, long term, (ulong Start, ulong Last)? range)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        WithFullSync(() =>
        {
            using var tx = _conn.BeginTransaction();
            using (var unmark = _conn.CreateCommand())
            {
                unmark.Transaction = tx;
                unmark.CommandText = "DELETE FROM snapshot_install WHERE shard = @s AND idx = @i AND term = @t";
                unmark.Parameters.AddWithValue("@s", shard);
                unmark.Parameters.AddWithValue("@i", index);
                unmark.Parameters.AddWithValue("@t", term);
                if (unmark.ExecuteNonQuery() != 1)
                    throw new InvalidOperationException($"No install of a snapshot of shard {shard} at {index} (term {term}) is in progress.");
            }
            SetApplied(tx, shard, index, term);
            RecordRange(tx, shard, range);
            CommitCounted(tx, shard, 0, shard);
        });
        PublishRange(shard, range);
    }

    /// <summary>
    /// Removes the rows of every install a crash (or a failed batch) interrupted, with its marker: the shard is left as
    /// it was before the install began, empty (only a replica with nothing applied installs in batches), and its replica
    /// asks for the snapshot again; and completes every drop a crash interrupted (<see cref="BeginDropShard"/>, marked at
    /// index 0). Returns those shards, each with whether it was a drop. Called when the node starts, before any group is
    /// hosted.
    /// </summary>
    public IReadOnlyList<(int Shard, bool Drop)> DiscardPartialInstalls()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var shards = new List<(int, bool)>();
        using (var list = _conn.CreateCommand())
        {
            list.CommandText = "SELECT shard, idx FROM snapshot_install ORDER BY shard";
            using var r = list.ExecuteReader();
            while (r.Read()) shards.Add((checked((int)r.GetInt64(0)), r.GetInt64(1) == 0));
        }
        foreach (var (shard, _) in shards) DropShard(shard); // rows, applied index and marker, in one transaction
        return shards;
    }

    /// <summary>
    /// Makes every transaction committed so far durable (one fsync of the WAL). Called before the
    /// Raft log is compacted up to the applied index: from then on the log cannot replay what a
    /// power loss would take from this store.
    /// </summary>
    public void Flush()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        WithFullSync(() =>
        {
            // A commit with synchronous=FULL syncs the WAL, and with it every earlier frame; it
            // needs a real change to commit, hence the counter.
            using var tx = _conn.BeginTransaction();
            using var cmd = _conn.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = "INSERT INTO durability_mark(id, flushes) VALUES(1, 1) ON CONFLICT(id) DO UPDATE SET flushes = flushes + 1";
            cmd.ExecuteNonQuery();
            tx.Commit();
        });
    }

    private void WithFullSync(Action action)
    {
        SqliteSetup.Execute(_conn, "PRAGMA synchronous=FULL;");
        try
        {
            action();
        }
        finally
        {
            SqliteSetup.Execute(_conn, "PRAGMA synchronous=NORMAL;");
        }
    }

    /// <summary>Removes every row, the applied index and any install marker and staged rows of <paramref name="shard"/> (loop thread only; not fsynced:
    /// the shard's Raft log is dropped after this and a restart finds nothing of it to replay).</summary>
    public void DropShard(int shard)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var tx = _conn.BeginTransaction();
        foreach (var table in new[] { "kv", "applied", "snapshot_install", "kv_staged", "snapshot_stage" })
            ExecuteForShard(tx, $"DELETE FROM {table} WHERE shard = @s", shard);
        CommitCounted(tx, shard, 0, shard);
    }

    /// <summary>Runs <paramref name="sql"/> in <paramref name="tx"/> with @s, @i, @t and @n bound to <paramref name="shard"/>,
    /// <paramref name="index"/>, <paramref name="term"/> and <paramref name="count"/> (those it does not name are ignored);
    /// the rows it changed.</summary>
    private int ExecuteForShard(SqliteTransaction tx, string sql, int shard, long index = 0, long term = 0, long count = 0)
    {
        using var cmd = _conn.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.Parameters.AddWithValue("@s", shard);
        cmd.Parameters.AddWithValue("@i", index);
        cmd.Parameters.AddWithValue("@t", term);
        cmd.Parameters.AddWithValue("@n", count);
        return cmd.ExecuteNonQuery();
    }

    /// <summary>
    /// Begins dropping <paramref name="shard"/> in bounded steps (a replica that moved away; NodeHost.Groups.cs): its
    /// applied index and any staged install go in this transaction, with a <c>snapshot_install</c> marker at index 0 in their
    /// place, and its rows then go <see cref="DropShardRows"/> at a time, the last step removing the marker. Dropped in one
    /// transaction, a 33 MB shard held its node's loop 84-213 ms (ring bench), and every other shard of the node with it.
    /// Until the last step the rows are partial and marked: a crash leaves them to <see cref="DiscardPartialInstalls"/> at the
    /// next start, and a replica hosted again must finish the drop first (<see cref="DropShard"/>). Not fsynced, like
    /// <see cref="DropShard"/>. Loop thread only.
    /// </summary>
    public void BeginDropShard(int shard)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var tx = _conn.BeginTransaction();
        foreach (var sql in new[]
        {
            "DELETE FROM applied WHERE shard = @s",
            "DELETE FROM kv_staged WHERE shard = @s",
            "DELETE FROM snapshot_stage WHERE shard = @s",
            "INSERT INTO snapshot_install(shard, idx, term) VALUES(@s, 0, 0) ON CONFLICT(shard) DO UPDATE SET idx = 0, term = 0",
        })
            ExecuteForShard(tx, sql, shard);
        CommitCounted(tx, shard, 0, shard);
    }

    /// <summary>One step of a drop begun by <see cref="BeginDropShard"/>: deletes up to <paramref name="rows"/> of the shard's
    /// rows, in key order, in one transaction; true once none is left, and then the marker went with the last of them. Loop
    /// thread only.</summary>
    public bool DropShardRows(int shard, int rows)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var tx = _conn.BeginTransaction();
        int deleted = ExecuteForShard(tx, "DELETE FROM kv WHERE shard = @s AND key IN (SELECT key FROM kv WHERE shard = @s ORDER BY key LIMIT @n)", shard, count: rows);
        bool done = deleted < rows;
        if (done) ExecuteForShard(tx, "DELETE FROM snapshot_install WHERE shard = @s", shard);
        CommitCounted(tx, shard, 0, shard);
        return done;
    }

    /// <summary>
    /// Replaces <paramref name="shard"/>'s rows, applied index and hash range with those of another state.db (a node's
    /// cold backup), in one transaction, then makes the file durable (loop thread only). Returns the imported
    /// applied index. The range is the backup's exactly, none included (a backup from before the shard split, or from a
    /// version without ranges): this replica may have applied further than the backup, and it replays the log from the
    /// backup's index, split entries included, with the ownership the shard had there.
    /// </summary>
    public long ImportShard(int shard, string sourceStateDb)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        SqliteSetup.Execute(_conn, $"ATTACH DATABASE '{sourceStateDb.Replace("'", "''")}' AS src;");
        try
        {
            bool ranges = SqliteSetup.ExecuteScalarLong(_conn, null, "SELECT count(*) FROM src.sqlite_master WHERE type = 'table' AND name = 'shard_range';") > 0;
            using (var tx = _conn.BeginTransaction())
            {
                foreach (var sql in new[]
                {
                    "DELETE FROM kv WHERE shard = @s",
                    "DELETE FROM applied WHERE shard = @s",
                    "DELETE FROM shard_range WHERE shard = @s",
                    "INSERT INTO kv SELECT * FROM src.kv WHERE shard = @s ORDER BY key",
                    "INSERT INTO applied SELECT * FROM src.applied WHERE shard = @s",
                }.Concat(ranges ? ["INSERT INTO shard_range(shard, start, last) SELECT shard, start, last FROM src.shard_range WHERE shard = @s"] : []))
                    ExecuteForShard(tx, sql, shard);
                CommitCounted(tx, shard, 0, shard);
            }
            LoadRanges(); // after the commit, as Apply publishes a split's ranges
        }
        finally
        {
            SqliteSetup.Execute(_conn, "DETACH DATABASE src;");
        }
        Flush();
        return AppliedIndex(shard);
    }
}
