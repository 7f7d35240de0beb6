using System.Buffers.Binary;
using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Replication.Engine.Raft;

namespace Replication.Engine.Storage;

/// <summary>
/// The durable Raft log and hard state of every Raft group (shard) a node hosts, in one SQLite
/// file (raft.db). See DESIGN.md, "Storage".
///
/// Contract: when <see cref="Save"/> returns, everything in the batch is on stable storage
/// (WAL mode with synchronous=FULL fsyncs the WAL at every commit), so the node may then send
/// the messages that acknowledge it (Raft: persist before answering). All groups of a batch
/// commit in one transaction, i.e. one fsync: that is the node's group commit, and why the
/// log of many groups shares one file rather than one file per group.
///
/// Integrity: each entry carries a CRC-32C over its index, term, type and data, checked by
/// <see cref="Load"/>, together with the contiguity of indexes; a failure throws
/// <see cref="StorageCorruptException"/> naming the file, group and index, because a node that
/// serves a damaged log can break Raft's safety for the whole group.
///
/// Not thread-safe: owned by the node loop thread, which is the only caller of every method.
/// </summary>
public sealed class RaftLogStore : IDisposable
{
    /// <summary>On-disk schema version (PRAGMA user_version). Bump it, with a migration, on any schema change.</summary>
    public const int SchemaVersion = 3; // 2: raft_snapshot (compaction metadata per group); 3: raft_replica (member id, tombstone)

    /// <summary>PRAGMA application_id of a raft.db ("RPLR"), so it is never mistaken for a state.db.</summary>
    internal const int ApplicationId = 0x52504C52;

    private const string CreateSql = """
        CREATE TABLE IF NOT EXISTS raft_log(
            grp INTEGER NOT NULL, idx INTEGER NOT NULL, term INTEGER NOT NULL,
            type INTEGER NOT NULL, data BLOB, crc INTEGER NOT NULL,
            PRIMARY KEY(grp, idx)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS raft_state(
            grp INTEGER PRIMARY KEY, term INTEGER NOT NULL, vote INTEGER NOT NULL, commit_idx INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS raft_snapshot(
            grp INTEGER PRIMARY KEY, idx INTEGER NOT NULL, term INTEGER NOT NULL,
            voters TEXT NOT NULL, learners TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS raft_replica(
            grp INTEGER PRIMARY KEY, member INTEGER NOT NULL, removed INTEGER NOT NULL);
        """;

    /// <summary>Version 2 to 3: the replica table (a version-2 file has none: its replicas are the legacy member id = node
    /// id, with no tombstones).</summary>
    private const string MigrateFrom2Sql = """
        CREATE TABLE IF NOT EXISTS raft_replica(
            grp INTEGER PRIMARY KEY, member INTEGER NOT NULL, removed INTEGER NOT NULL);
        PRAGMA user_version=3;
        """;

    // WAL checkpoints: SQLite's default auto-checkpoint (every 1000 pages, run by the committing
    // connection) is kept for now. The log is sequential-key and small per batch, so this store
    // rarely pays for it; the design's tuning point (DESIGN.md: big batches overflow the WAL and
    // force a checkpoint per commit) is mainly KvStore's, and if it shows here too the fix is the
    // same: a larger wal_autocheckpoint, or checkpoints from a background connection.

    private readonly string _filePath;
    private readonly SqliteConnection _conn;
    private readonly SqliteCommand _upsertState;
    private readonly SqliteCommand _deleteFrom;
    private readonly SqliteCommand _insertEntry;
    private bool _disposed;

    /// <summary>Opens raft.db at <paramref name="filePath"/>, creating it (and its schema) if absent.</summary>
    /// <exception cref="StorageCorruptException">The file has an unknown schema version or belongs to another store.</exception>
    public RaftLogStore(string filePath)
    {
        _filePath = filePath;
        _conn = SqliteSetup.OpenWriter(filePath, SqliteSynchronous.Full);
        try
        {
            MigrateFrom2();
            SqliteSetup.EnsureSchema(_conn, filePath, ApplicationId, SchemaVersion, CreateSql);
            ReserveWal(filePath + "-wal");
            _upsertState = Prepare("""
                INSERT INTO raft_state(grp, term, vote, commit_idx) VALUES(@grp, @term, @vote, @commit)
                ON CONFLICT(grp) DO UPDATE SET term = excluded.term, vote = excluded.vote, commit_idx = excluded.commit_idx
                """, "@grp", "@term", "@vote", "@commit");
            _deleteFrom = Prepare("DELETE FROM raft_log WHERE grp = @grp AND idx >= @idx", "@grp", "@idx");
            _insertEntry = Prepare(
                "INSERT INTO raft_log(grp, idx, term, type, data, crc) VALUES(@grp, @idx, @term, @type, @data, @crc)",
                "@grp", "@idx", "@term", "@type", "@data", "@crc");
        }
        catch
        {
            _conn.Dispose();
            throw;
        }
    }

    /// <summary>The WAL's working size: SQLite's auto-checkpoint restarts it after 1000 frames of a 4 KiB page (plus
    /// their 24-byte headers), with room to spare for a checkpoint that a reader holds back.</summary>
    internal const long WalReserveBytes = 5 << 20;

    /// <summary>
    /// Writes zeros up to <see cref="WalReserveBytes"/> past the end of raft.db's WAL, once the store is open in WAL mode
    /// (switching a file to WAL deletes a WAL that was there) and before its first commit of entries. Every commit fsyncs
    /// the WAL, and while the WAL grows each of those fsyncs must also make the file's new size and blocks durable:
    /// measured with `strace -T` on a fresh node, 26-29 ms per fsync in its first minute against 10-13 ms once the WAL had
    /// reached its working size and was being overwritten, and 9.4 ms in both with the reservation (README, Benchmarks).
    /// Safe for SQLite: it takes a WAL whose header is not valid as empty, and stops reading frames at the first whose
    /// checksum fails, so zeros after the last frame (a WAL left by a crash keeps its frames: only its end is extended) are
    /// never taken for data, and it writes each frame at its own offset, whatever the file's length; SQLite deletes the WAL
    /// when the store closes cleanly, so each open reserves again. Best effort: when the disk has no room for it, the store
    /// opens without it.
    /// </summary>
    private static void ReserveWal(string walPath)
    {
        try
        {
            using var wal = new FileStream(walPath, FileMode.OpenOrCreate, FileAccess.Write, FileShare.ReadWrite);
            if (wal.Length >= WalReserveBytes) return;
            wal.Seek(0, SeekOrigin.End);
            var zeros = new byte[64 << 10];
            for (long left = WalReserveBytes - wal.Length; left > 0; left -= zeros.Length)
                wal.Write(zeros, 0, (int)Math.Min(zeros.Length, left));
            wal.Flush(flushToDisk: true); // the blocks and the size on disk now, not in the first commits' fsyncs
        }
        catch (IOException)
        {
            // No room (or the WAL cannot be written at all, which opening the store reports on its own).
        }
    }

    private void MigrateFrom2()
    {
        using var tx = _conn.BeginTransaction();
        if (SqliteSetup.ExecuteScalarLong(_conn, tx, "PRAGMA application_id;") == ApplicationId
            && SqliteSetup.ExecuteScalarLong(_conn, tx, "PRAGMA user_version;") == 2)
            SqliteSetup.Execute(_conn, tx, MigrateFrom2Sql);
        tx.Commit();
    }

    /// <summary>
    /// This node's replica of <paramref name="group"/>: the member id it hosts (0 when none is recorded: a group stored by
    /// a version-2 file, whose member id is the node id, or none hosted) and the highest member id of the group it has
    /// dropped here, its tombstone: a replica with an id at or below it is never hosted again (NodeHost.Groups.cs).
    /// </summary>
    public (int Member, int Removed) Replica(int group)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var cmd = _conn.CreateCommand();
        cmd.CommandText = "SELECT member, removed FROM raft_replica WHERE grp = @grp";
        cmd.Parameters.AddWithValue("@grp", group);
        using var r = cmd.ExecuteReader();
        return r.Read() ? (checked((int)r.GetInt64(0)), checked((int)r.GetInt64(1))) : (0, 0);
    }

    /// <summary>Records the member id this node hosts <paramref name="group"/> as (durable when it returns).</summary>
    public void SetReplica(int group, int member)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var cmd = _conn.CreateCommand();
        cmd.CommandText = """
            INSERT INTO raft_replica(grp, member, removed) VALUES(@grp, @member, 0)
            ON CONFLICT(grp) DO UPDATE SET member = excluded.member
            """;
        cmd.Parameters.AddWithValue("@grp", group);
        cmd.Parameters.AddWithValue("@member", member);
        cmd.ExecuteNonQuery();
    }

    /// <summary>
    /// Reads one group's hard state and all its entries. Every entry is verified (CRC-32C and
    /// contiguous indexes) because this is what a restarting node trusts its vote and log from.
    /// </summary>
    /// <exception cref="StorageCorruptException">An entry fails its checksum, has an unknown type, or indexes have a gap;
    /// or SQLite finds a page of the file malformed.</exception>
    public RaftGroupLog Load(int group)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return StorageErrors.MapCorruption(_filePath, () => LoadCore(group));
    }

    private RaftGroupLog LoadCore(int group)
    {
        using var tx = _conn.BeginTransaction(deferred: true); // one consistent snapshot of state and log

        var state = HardState.Empty;
        using (var cmd = _conn.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = "SELECT term, vote, commit_idx FROM raft_state WHERE grp = @grp";
            cmd.Parameters.AddWithValue("@grp", group);
            using var r = cmd.ExecuteReader();
            if (r.Read()) state = new HardState(r.GetInt64(0), checked((int)r.GetInt64(1)), r.GetInt64(2));
        }

        SnapshotMetadata? snapshot = null;
        using (var cmd = _conn.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = "SELECT idx, term, voters, learners FROM raft_snapshot WHERE grp = @grp";
            cmd.Parameters.AddWithValue("@grp", group);
            using var r = cmd.ExecuteReader();
            if (r.Read())
                snapshot = new SnapshotMetadata(r.GetInt64(0), r.GetInt64(1), ParseIds(group, r.GetString(2)), ParseIds(group, r.GetString(3)));
        }

        var entries = new List<LogEntry>();
        using (var cmd = _conn.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = "SELECT idx, term, type, data, crc FROM raft_log WHERE grp = @grp ORDER BY idx";
            cmd.Parameters.AddWithValue("@grp", group);
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                long idx = r.GetInt64(0);
                long term = r.GetInt64(1);
                long type = r.GetInt64(2);
                byte[] data = r.IsDBNull(3) ? [] : r.GetFieldValue<byte[]>(3);
                long storedCrc = r.GetInt64(4);

                if (entries.Count > 0 && idx != entries[^1].Index + 1)
                    throw Corrupt(group, idx, $"follows entry {entries[^1].Index}; the log has a gap");
                if (entries.Count == 0 && snapshot is not null && idx != snapshot.Index + 1)
                    throw Corrupt(group, idx, $"is the first entry after a snapshot at {snapshot.Index}; the log has a gap");
                if (type is < 0 or > byte.MaxValue || !Enum.IsDefined((EntryType)(byte)type))
                    throw Corrupt(group, idx, $"has unknown entry type {type}");
                var entry = new LogEntry(idx, term, (EntryType)(byte)type, data);
                uint crc = EntryCrc(entry);
                if (storedCrc != crc)
                    throw Corrupt(group, idx, $"fails its checksum (stored 0x{storedCrc:X8}, computed 0x{crc:X8})");
                entries.Add(entry);
            }
        }
        tx.Commit();
        return new RaftGroupLog(state, entries, snapshot);
    }

    /// <summary>Groups that have a saved hard state or at least one entry, ascending.</summary>
    public IReadOnlyList<int> Groups()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var cmd = _conn.CreateCommand();
        // raft_log is ordered by (grp, idx), so DISTINCT needs no sort, but it walks every entry:
        // meant for node startup, not for a hot path.
        cmd.CommandText = "SELECT grp FROM raft_state UNION SELECT DISTINCT grp FROM raft_log ORDER BY 1";
        using var r = cmd.ExecuteReader();
        var groups = new List<int>();
        while (r.Read()) groups.Add(checked((int)r.GetInt64(0)));
        return groups;
    }

    /// <summary>
    /// Persists a batch for any number of groups in ONE transaction (one fsync): durable when
    /// this returns; on an exception nothing of the batch is stored. Per write: a non-null
    /// state replaces the group's hard state; non-empty entries replace the group's entries from
    /// Entries[0].Index on (a conflicting suffix is discarded) and are appended.
    /// </summary>
    public void Save(IReadOnlyList<GroupWrite> writes)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (writes.Count == 0) return;

        using var tx = _conn.BeginTransaction(); // BEGIN IMMEDIATE: take the write lock up front
        _upsertState.Transaction = tx;
        _deleteFrom.Transaction = tx;
        _insertEntry.Transaction = tx;

        foreach (var w in writes)
        {
            if (w.State is { } hs)
            {
                _upsertState.Parameters[0].Value = w.Group;
                _upsertState.Parameters[1].Value = hs.Term;
                _upsertState.Parameters[2].Value = hs.Vote;
                _upsertState.Parameters[3].Value = hs.Commit;
                _upsertState.ExecuteNonQuery();
            }

            if (w.Entries.Count == 0) continue;
            _deleteFrom.Parameters[0].Value = w.Group;
            _deleteFrom.Parameters[1].Value = w.Entries[0].Index;
            _deleteFrom.ExecuteNonQuery();

            _insertEntry.Parameters[0].Value = w.Group;
            for (int i = 0; i < w.Entries.Count; i++)
            {
                var e = w.Entries[i];
                Debug.Assert(i == 0 || e.Index == w.Entries[i - 1].Index + 1, "entries of one write must be contiguous and ascending");
                Debug.Assert(e.Index > 0, "Raft indexes start at 1");
                _insertEntry.Parameters[1].Value = e.Index;
                _insertEntry.Parameters[2].Value = e.Term;
                _insertEntry.Parameters[3].Value = (byte)e.Type;
                _insertEntry.Parameters[4].Value = e.Data;
                _insertEntry.Parameters[5].Value = (long)EntryCrc(e);
                _insertEntry.ExecuteNonQuery();
            }
        }
        tx.Commit();
    }

    /// <summary>
    /// Runs SQLite's <c>PRAGMA quick_check</c> on raft.db (see <see cref="KvStore.CheckIntegrity"/>): the entries' CRCs
    /// (checked by <see cref="Load"/>) cover their contents, this covers the B-tree pages around them.
    /// </summary>
    /// <exception cref="StorageCorruptException">The check found a problem.</exception>
    public void CheckIntegrity()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        SqliteSetup.QuickCheck(_conn, _filePath);
    }

    /// <summary>
    /// Commits one transaction that inserts and deletes a marker row (group <see cref="int.MinValue"/>, never a real
    /// group): it changes nothing, but writes a page to the WAL like any save, so it fails with SQLITE_FULL while the
    /// disk has no room. (Rewriting an existing row unchanged would not do: SQLite skips identical content.)
    /// </summary>
    public void Probe()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var tx = _conn.BeginTransaction();
        SqliteSetup.Execute(_conn, tx, $"INSERT INTO raft_state(grp, term, vote, commit_idx) VALUES({int.MinValue}, 0, 0, 0); DELETE FROM raft_state WHERE grp = {int.MinValue};");
        tx.Commit();
    }

    /// <summary>
    /// Records that the group's state up to <paramref name="snapshot"/>.Index now lives in a
    /// state-machine snapshot, in one durable transaction: the metadata (index, term, membership)
    /// replaces the previous one, and entries are discarded — those up to the snapshot index after
    /// a local compaction, or every entry when <paramref name="discardLog"/> (a snapshot received
    /// from the leader replaces the whole log, Raft paper section 7). The caller must have made the
    /// state machine durable at that index first: once this returns, the log cannot replay it.
    /// </summary>
    public void SaveSnapshot(int group, SnapshotMetadata snapshot, bool discardLog)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var tx = _conn.BeginTransaction();
        using (var cmd = _conn.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = """
                INSERT INTO raft_snapshot(grp, idx, term, voters, learners) VALUES(@grp, @idx, @term, @voters, @learners)
                ON CONFLICT(grp) DO UPDATE SET idx = excluded.idx, term = excluded.term, voters = excluded.voters, learners = excluded.learners
                """;
            cmd.Parameters.AddWithValue("@grp", group);
            cmd.Parameters.AddWithValue("@idx", snapshot.Index);
            cmd.Parameters.AddWithValue("@term", snapshot.Term);
            cmd.Parameters.AddWithValue("@voters", string.Join(',', snapshot.Voters));
            cmd.Parameters.AddWithValue("@learners", string.Join(',', snapshot.Learners));
            cmd.ExecuteNonQuery();
        }
        using (var cmd = _conn.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = discardLog ? "DELETE FROM raft_log WHERE grp = @grp" : "DELETE FROM raft_log WHERE grp = @grp AND idx <= @idx";
            cmd.Parameters.AddWithValue("@grp", group);
            cmd.Parameters.AddWithValue("@idx", snapshot.Index);
            cmd.ExecuteNonQuery();
        }
        tx.Commit();
    }

    /// <summary>
    /// Discards the group's entries after <paramref name="index"/> (durable when it returns). For a
    /// replica restored from an old copy: entries beyond its applied index are not known to be
    /// committed and may conflict with what the group committed since, so they must go before the
    /// node rejoins (a leader's heartbeat could otherwise commit them on that node).
    /// </summary>
    public void TruncateAfter(int group, long index)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var cmd = _conn.CreateCommand();
        cmd.CommandText = "DELETE FROM raft_log WHERE grp = @grp AND idx > @idx";
        cmd.Parameters.AddWithValue("@grp", group);
        cmd.Parameters.AddWithValue("@idx", index);
        cmd.ExecuteNonQuery();
    }

    /// <summary>Removes everything of <paramref name="group"/>: entries, hard state, snapshot metadata (durable when it returns).
    /// The dropped replica's member id (<paramref name="member"/>, the one it was hosted as) becomes the group's tombstone
    /// when higher than the one recorded: that replica is never hosted again.</summary>
    public void DropGroup(int group, int member)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var tx = _conn.BeginTransaction();
        using (var tomb = _conn.CreateCommand())
        {
            tomb.Transaction = tx;
            tomb.CommandText = """
                INSERT INTO raft_replica(grp, member, removed) VALUES(@grp, 0, @member)
                ON CONFLICT(grp) DO UPDATE SET member = 0, removed = max(removed, excluded.removed)
                """;
            tomb.Parameters.AddWithValue("@grp", group);
            tomb.Parameters.AddWithValue("@member", member);
            tomb.ExecuteNonQuery();
        }
        foreach (var table in new[] { "raft_log", "raft_state", "raft_snapshot" })
        {
            using var cmd = _conn.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = $"DELETE FROM {table} WHERE grp = @grp";
            cmd.Parameters.AddWithValue("@grp", group);
            cmd.ExecuteNonQuery();
        }
        tx.Commit();
    }

    /// <summary>
    /// Copies <paramref name="group"/>'s hard state, snapshot metadata and entries up to
    /// <paramref name="upToIndex"/> from another raft.db (a node's cold backup) into this store, in one
    /// durable transaction, replacing what this store had for the group. Entries after the index (not known
    /// to be committed) are left behind. The copied entries are checked as at start-up when the group loads.
    /// </summary>
    public void ImportGroup(int group, string sourceRaftDb, long upToIndex)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        SqliteSetup.Execute(_conn, $"ATTACH DATABASE '{sourceRaftDb.Replace("'", "''")}' AS src;");
        try
        {
            using var tx = _conn.BeginTransaction();
            foreach (var (sql, bounded) in new[]
            {
                ("DELETE FROM raft_log WHERE grp = @grp", false),
                ("DELETE FROM raft_state WHERE grp = @grp", false),
                ("DELETE FROM raft_snapshot WHERE grp = @grp", false),
                ("INSERT INTO raft_log SELECT * FROM src.raft_log WHERE grp = @grp AND idx <= @idx", true),
                ("INSERT INTO raft_state SELECT * FROM src.raft_state WHERE grp = @grp", false),
                ("INSERT INTO raft_snapshot SELECT * FROM src.raft_snapshot WHERE grp = @grp", false),
                ("UPDATE raft_state SET commit_idx = min(commit_idx, @idx) WHERE grp = @grp", true),
            })
            {
                using var cmd = _conn.CreateCommand();
                cmd.Transaction = tx;
                cmd.CommandText = sql;
                cmd.Parameters.AddWithValue("@grp", group);
                if (bounded) cmd.Parameters.AddWithValue("@idx", upToIndex);
                cmd.ExecuteNonQuery();
            }
            tx.Commit();
        }
        finally
        {
            SqliteSetup.Execute(_conn, "DETACH DATABASE src;");
        }
    }

    private int[] ParseIds(int group, string text)
    {
        if (text.Length == 0) return [];
        var parts = text.Split(',');
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out ids[i]))
                throw new StorageCorruptException($"Raft log '{_filePath}', group {group}: snapshot membership '{text}' is malformed.");
        return ids;
    }

    /// <summary>A pragma's value on the writer connection (tests check synchronous and journal_mode).</summary>
    internal string WriterPragma(string name) => SqliteSetup.Pragma(_conn, name);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _upsertState.Dispose();
        _deleteFrom.Dispose();
        _insertEntry.Dispose();
        _conn.Dispose();
    }

    /// <summary>
    /// CRC-32C of an entry: index and term as 8-byte little-endian, the type byte, then the data.
    /// Covering index and term (not only data) catches a row whose payload is intact but that
    /// sits at the wrong place in the log.
    /// </summary>
    internal static uint EntryCrc(LogEntry e)
    {
        Span<byte> header = stackalloc byte[17];
        BinaryPrimitives.WriteInt64LittleEndian(header, e.Index);
        BinaryPrimitives.WriteInt64LittleEndian(header[8..], e.Term);
        header[16] = (byte)e.Type;
        return Crc32C.Append(Crc32C.Compute(header), e.Data);
    }

    private StorageCorruptException Corrupt(int group, long index, string what) =>
        new($"Raft log '{_filePath}', group {group}: entry {index} {what}.") { Target = index };

    private SqliteCommand Prepare(string sql, params string[] parameterNames)
    {
        var cmd = _conn.CreateCommand();
        cmd.CommandText = sql;
        foreach (var name in parameterNames) cmd.Parameters.Add(new SqliteParameter { ParameterName = name });
        cmd.Prepare(); // compiled once, re-bound per row: the statement is reused for the store's lifetime
        return cmd;
    }
}
