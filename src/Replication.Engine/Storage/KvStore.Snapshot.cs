namespace Replication.Engine.Storage;

/// <summary>Snapshots of a shard: taking one (any thread), installing one and making the store durable (node loop thread only).</summary>
public sealed partial class KvStore
{
    /// <summary>Opens a consistent view of <paramref name="shard"/> (see <see cref="ShardSnapshotReader"/>). Thread-safe.</summary>
    public ShardSnapshotReader OpenSnapshot(int shard)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new ShardSnapshotReader(_readerConnectionString, shard);
    }

    /// <summary>
    /// Replaces everything <paramref name="shard"/> holds with <paramref name="rows"/> (a snapshot
    /// taken on another replica) and sets its applied index and term, in ONE transaction made
    /// durable before this returns: the caller discards its Raft log next, so the state machine
    /// must never roll back behind it (the writer otherwise runs at synchronous=NORMAL).
    /// On an exception nothing changed.
    /// </summary>
    public void InstallSnapshot(int shard, long index, long term, IEnumerable<StoredKey> rows)
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
            _upsertKv.Transaction = tx;
            foreach (var row in rows)
            {
                _upsertKv.Parameters[0].Value = shard;
                _upsertKv.Parameters[1].Value = row.Key;
                _upsertKv.Parameters[2].Value = row.Value;
                _upsertKv.Parameters[3].Value = row.Version;
                _upsertKv.Parameters[4].Value = row.ModifiedIndex;
                _upsertKv.ExecuteNonQuery();
            }
            _upsertApplied.Transaction = tx;
            _upsertApplied.Parameters[0].Value = shard;
            _upsertApplied.Parameters[1].Value = index;
            _upsertApplied.Parameters[2].Value = term;
            _upsertApplied.ExecuteNonQuery();
            CommitCounted(tx, shard, 0, shard);
        });
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

    /// <summary>Removes every row and the applied index of <paramref name="shard"/> (loop thread only; not fsynced:
    /// the shard's Raft log is dropped after this and a restart finds nothing of it to replay).</summary>
    public void DropShard(int shard)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var tx = _conn.BeginTransaction();
        foreach (var table in new[] { "kv", "applied" })
        {
            using var cmd = _conn.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = $"DELETE FROM {table} WHERE shard = @s";
            cmd.Parameters.AddWithValue("@s", shard);
            cmd.ExecuteNonQuery();
        }
        CommitCounted(tx, shard, 0, shard);
    }

    /// <summary>
    /// Replaces <paramref name="shard"/>'s rows and applied index with those of another state.db (a node's cold
    /// backup), in one transaction, then makes the file durable (loop thread only). Returns the imported
    /// applied index.
    /// </summary>
    public long ImportShard(int shard, string sourceStateDb)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        SqliteSetup.Execute(_conn, $"ATTACH DATABASE '{sourceStateDb.Replace("'", "''")}' AS src;");
        try
        {
            using (var tx = _conn.BeginTransaction())
            {
                foreach (var sql in new[]
                {
                    "DELETE FROM kv WHERE shard = @s",
                    "DELETE FROM applied WHERE shard = @s",
                    "INSERT INTO kv SELECT * FROM src.kv WHERE shard = @s ORDER BY key",
                    "INSERT INTO applied SELECT * FROM src.applied WHERE shard = @s",
                })
                {
                    using var cmd = _conn.CreateCommand();
                    cmd.Transaction = tx;
                    cmd.CommandText = sql;
                    cmd.Parameters.AddWithValue("@s", shard);
                    cmd.ExecuteNonQuery();
                }
                CommitCounted(tx, shard, 0, shard);
            }
        }
        finally
        {
            SqliteSetup.Execute(_conn, "DETACH DATABASE src;");
        }
        Flush();
        return AppliedIndex(shard);
    }
}
