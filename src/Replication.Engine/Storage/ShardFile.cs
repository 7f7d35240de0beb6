using System.Globalization;
using Microsoft.Data.Sqlite;

namespace Replication.Engine.Storage;

/// <summary>
/// The per-shard file of a hot backup (shard-NNNN.db): a self-contained SQLite database in
/// rollback-journal mode (one file, no -wal/-shm) holding one shard's rows and the Raft index and
/// term they reflect. Format v1:
/// <code>
///   kv(key TEXT PRIMARY KEY, value TEXT, version INTEGER, modified_index INTEGER) WITHOUT ROWID
///   shard(shard INTEGER, idx INTEGER, term INTEGER)   -- exactly one row
///   PRAGMA application_id = 0x5250424B ("RPBK"), user_version = 1
/// </code>
/// Also: seeding a node's state.db from such a file (or from a cold backup's state.db), for restore.
/// Stateless and thread-safe; every method opens and closes its own unpooled connections.
/// </summary>
internal static class ShardFile
{
    public const int FormatVersion = 1;
    public const int ApplicationId = 0x5250424B;

    private const string CreateSql = """
        CREATE TABLE kv(key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL,
            version INTEGER NOT NULL, modified_index INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE shard(shard INTEGER NOT NULL, idx INTEGER NOT NULL, term INTEGER NOT NULL);
        """;

    /// <summary>What a shard copy holds: the applied index and term read in the same transaction as the rows.</summary>
    public readonly record struct Content(int Shard, long Index, long Term, long KeyCount);

    /// <summary>
    /// Copies <paramref name="shard"/> from a node's state.db into a new shard file at
    /// <paramref name="target"/> inside ONE transaction: the rows and the applied(idx, term) row come
    /// from the same read snapshot of state.db (SQLite WAL: a read transaction sees one commit), so
    /// the file is exactly the shard's state at that applied index, while the node keeps applying.
    /// The transaction is deferred (BEGIN, not IMMEDIATE) so it never takes state.db's write lock.
    /// Durable (synchronous=FULL) when it returns.
    /// </summary>
    public static Content CopyFromStateDb(string stateDb, int shard, string target)
    {
        if (!File.Exists(stateDb)) throw new FileNotFoundException($"No state.db at '{stateDb}'.", stateDb);
        if (File.Exists(target)) throw new IOException($"'{target}' already exists; a backup never overwrites.");
        using var conn = Open(target, SqliteOpenMode.ReadWriteCreate);
        SqliteSetup.Execute(conn, "PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL;");
        SqliteSetup.Execute(conn, CreateSql +
            $"PRAGMA application_id={ApplicationId.ToString(CultureInfo.InvariantCulture)}; PRAGMA user_version={FormatVersion.ToString(CultureInfo.InvariantCulture)};");
        Attach(conn, stateDb);
        Content content;
        using (var tx = conn.BeginTransaction(deferred: true))
        {
            // The first read of src starts its snapshot; everything below sees that one commit.
            Exec(conn, tx, "INSERT INTO shard(shard, idx, term) SELECT @s, coalesce(max(idx), 0), coalesce(max(term), 0) FROM src.applied WHERE shard = @s", shard);
            Exec(conn, tx, "INSERT INTO kv(key, value, version, modified_index) SELECT key, value, version, modified_index FROM src.kv WHERE shard = @s ORDER BY key", shard);
            content = ReadContent(conn, tx);
            tx.Commit();
        }
        SqliteSetup.Execute(conn, "DETACH DATABASE src;");
        return content;
    }

    /// <summary>
    /// Writes a new shard file from rows that arrive in pages (a hot backup read over the network): created with
    /// the format's schema, rows appended in key order inside one transaction, and the shard row (index, term)
    /// written last by <see cref="Writer.Complete"/>, which commits durably. Disposed without completing, the
    /// file is left incomplete (the caller deletes it). Not thread-safe.
    /// </summary>
    public sealed class Writer : IDisposable
    {
        private readonly SqliteConnection _conn;
        private readonly SqliteTransaction _tx;
        private readonly SqliteCommand _insert;
        private bool _done;

        public Writer(string target)
        {
            if (File.Exists(target)) throw new IOException($"'{target}' already exists; a backup never overwrites.");
            _conn = Open(target, SqliteOpenMode.ReadWriteCreate);
            SqliteSetup.Execute(_conn, "PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL;");
            SqliteSetup.Execute(_conn, CreateSql +
                $"PRAGMA application_id={ApplicationId.ToString(CultureInfo.InvariantCulture)}; PRAGMA user_version={FormatVersion.ToString(CultureInfo.InvariantCulture)};");
            _tx = _conn.BeginTransaction();
            _insert = _conn.CreateCommand();
            _insert.Transaction = _tx;
            _insert.CommandText = "INSERT INTO kv(key, value, version, modified_index) VALUES(@k, @v, @ver, @idx)";
            foreach (var name in new[] { "@k", "@v", "@ver", "@idx" }) _insert.Parameters.Add(new SqliteParameter { ParameterName = name });
        }

        public void Add(StoredKey row)
        {
            _insert.Parameters[0].Value = row.Key;
            _insert.Parameters[1].Value = row.Value;
            _insert.Parameters[2].Value = row.Version;
            _insert.Parameters[3].Value = row.ModifiedIndex;
            _insert.ExecuteNonQuery();
        }

        /// <summary>Writes the shard row and commits (durable when it returns).</summary>
        public Content Complete(int shard, long index, long term)
        {
            using (var cmd = _conn.CreateCommand())
            {
                cmd.Transaction = _tx;
                cmd.CommandText = "INSERT INTO shard(shard, idx, term) VALUES(@s, @i, @t)";
                cmd.Parameters.AddWithValue("@s", shard);
                cmd.Parameters.AddWithValue("@i", index);
                cmd.Parameters.AddWithValue("@t", term);
                cmd.ExecuteNonQuery();
            }
            var content = ReadContent(_conn, _tx);
            _tx.Commit();
            _done = true;
            return content;
        }

        public void Dispose()
        {
            if (!_done) _tx.Rollback();
            _insert.Dispose();
            _tx.Dispose();
            _conn.Dispose();
        }
    }

    /// <summary>The groups a raft.db holds a hard state or entries for (read-only: a backup's copy is not changed).</summary>
    public static IReadOnlyList<int> GroupsOf(string raftDb)
    {
        using var conn = Open(raftDb, SqliteOpenMode.ReadOnly);
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "SELECT grp FROM raft_state UNION SELECT DISTINCT grp FROM raft_log ORDER BY 1";
        using var r = cmd.ExecuteReader();
        var groups = new List<int>();
        while (r.Read()) groups.Add(checked((int)r.GetInt64(0)));
        return groups;
    }

    /// <summary>
    /// Streams a backup's rows of one shard in key order: from a shard file (<paramref name="stateDbShard"/> null)
    /// or from a cold backup's state.db (the rows of that shard). Read-only, one unpooled connection.
    /// </summary>
    public static IEnumerable<StoredKey> ReadRows(string file, int? stateDbShard)
    {
        using var conn = Open(file, SqliteOpenMode.ReadOnly);
        using var cmd = conn.CreateCommand();
        cmd.CommandText = stateDbShard is null
            ? "SELECT key, value, version, modified_index FROM kv ORDER BY key"
            : "SELECT key, value, version, modified_index FROM kv WHERE shard = @s ORDER BY key";
        if (stateDbShard is int s) cmd.Parameters.AddWithValue("@s", s);
        using var r = cmd.ExecuteReader();
        while (r.Read()) yield return new StoredKey(r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3));
    }

    /// <summary>
    /// Opens a shard file read-only and reads what it holds, checking its format. Used by verification.
    /// </summary>
    /// <exception cref="BackupCorruptException">Not a shard file of a known version, or SQLite finds it damaged.</exception>
    public static Content Inspect(string file)
    {
        try
        {
            using var conn = Open(file, SqliteOpenMode.ReadOnly);
            long appId = SqliteSetup.ExecuteScalarLong(conn, null, "PRAGMA application_id;");
            long version = SqliteSetup.ExecuteScalarLong(conn, null, "PRAGMA user_version;");
            if (appId != ApplicationId || version != FormatVersion)
                throw new BackupCorruptException(file, $"'{file}' is not a shard backup file of format {FormatVersion} (application_id {appId}, version {version}).");
            QuickCheck(conn, file);
            using var tx = conn.BeginTransaction(deferred: true);
            return ReadContent(conn, tx);
        }
        catch (SqliteException ex)
        {
            throw new BackupCorruptException(file, $"'{file}' cannot be read as a shard backup: {ex.Message}");
        }
    }

    /// <summary>
    /// Per shard: key count, applied index and term of a node's state.db (a cold backup's copy).
    /// Opened read-only; the copy is in rollback-journal mode, so nothing is created beside it.
    /// </summary>
    public static IReadOnlyList<Content> InspectStateDb(string stateDb, IEnumerable<int> shards)
    {
        try
        {
            using var conn = Open(stateDb, SqliteOpenMode.ReadOnly);
            QuickCheck(conn, stateDb);
            using var tx = conn.BeginTransaction(deferred: true);
            var list = new List<Content>();
            foreach (int s in shards)
            {
                using var cmd = conn.CreateCommand();
                cmd.Transaction = tx;
                cmd.CommandText = "SELECT (SELECT count(*) FROM kv WHERE shard = @s), coalesce((SELECT idx FROM applied WHERE shard = @s), 0), coalesce((SELECT term FROM applied WHERE shard = @s), 0)";
                cmd.Parameters.AddWithValue("@s", s);
                using var r = cmd.ExecuteReader();
                r.Read();
                list.Add(new Content(s, r.GetInt64(1), r.GetInt64(2), r.GetInt64(0)));
            }
            return list;
        }
        catch (SqliteException ex)
        {
            throw new BackupCorruptException(stateDb, $"'{stateDb}' cannot be read as a state.db: {ex.Message}");
        }
    }

    /// <summary>
    /// Copies a whole SQLite file consistently with SQLite's online backup API (page by page, from
    /// one read snapshot) and leaves the copy in rollback-journal mode: a single self-contained file
    /// that can be hashed, verified read-only, and opened again as a store (which turns WAL back on).
    /// </summary>
    public static void CopyDatabase(string source, string target)
    {
        if (File.Exists(target)) throw new IOException($"'{target}' already exists; a backup never overwrites.");
        // ReadWrite, not ReadOnly: a WAL file left by a crash needs its -shm, and its recovery
        // (a checkpoint on close) is what SQLite would do on the node's next start anyway.
        using (var src = Open(source, SqliteOpenMode.ReadWrite))
        using (var dst = Open(target, SqliteOpenMode.ReadWriteCreate))
        {
            src.BackupDatabase(dst);
            SqliteSetup.Execute(dst, "PRAGMA journal_mode=DELETE;");
        }
    }

    /// <summary>
    /// Copies the state machine of the data folder <paramref name="dataFolder"/> of a node at rest (stopped, or its loop held)
    /// into <paramref name="targetStateDb"/>, one self-contained file as <see cref="CopyDatabase"/> leaves it: its state.db as
    /// it is, or, for the layout of a file per shard, every shard's file merged into one state.db (a cold backup has one
    /// format whatever the layout of the node it was taken from; restoring it seeds or imports from that file).
    /// </summary>
    public static void CopyStateMachine(string dataFolder, string targetStateDb)
    {
        if (KvStore.LayoutIn(dataFolder) != StoreLayout.FilePerShard)
        {
            CopyDatabase(Path.Combine(dataFolder, "state.db"), targetStateDb);
            return;
        }
        if (File.Exists(targetStateDb)) throw new IOException($"'{targetStateDb}' already exists; a backup never overwrites.");
        using (var merged = new KvStore(targetStateDb))
        {
            foreach (var (shard, file) in KvStore.ShardFilesIn(Path.Combine(dataFolder, KvStore.ShardFolderName)))
                merged.ImportShard(shard, file);
        }
        using var conn = Open(targetStateDb, SqliteOpenMode.ReadWrite);
        SqliteSetup.Execute(conn, "PRAGMA journal_mode=DELETE;");
    }

    /// <summary>
    /// Seeds <paramref name="shard"/> of a node's (new, just created) state.db from a backup: from a
    /// shard file (<paramref name="sourceShard"/> null) or from a cold backup's state.db (rows of
    /// <paramref name="sourceShard"/>). Keys keep their value and version; modified_index becomes 0
    /// ("written before this cluster's log began"), and no applied row is written: the restored
    /// cluster is a new cluster whose Raft log starts empty at index 1, and the state machine
    /// applies its entries on top of the restored rows. One transaction: all rows or none.
    /// </summary>
    public static long Seed(string stateDb, int shard, string source, int? sourceShard)
    {
        using var conn = Open(stateDb, SqliteOpenMode.ReadWrite);
        Attach(conn, source);
        long n;
        using (var tx = conn.BeginTransaction())
        {
            using var cmd = conn.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = sourceShard is null
                ? "INSERT INTO kv(shard, key, value, version, modified_index) SELECT @s, key, value, version, 0 FROM src.kv ORDER BY key"
                : "INSERT INTO kv(shard, key, value, version, modified_index) SELECT @s, key, value, version, 0 FROM src.kv WHERE shard = @from ORDER BY key";
            cmd.Parameters.AddWithValue("@s", shard);
            if (sourceShard is int from) cmd.Parameters.AddWithValue("@from", from);
            n = cmd.ExecuteNonQuery();
            tx.Commit();
        }
        SqliteSetup.Execute(conn, "DETACH DATABASE src;");
        return n;
    }

    private static Content ReadContent(SqliteConnection conn, SqliteTransaction tx)
    {
        using var cmd = conn.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "SELECT shard, idx, term, (SELECT count(*) FROM kv), (SELECT count(*) FROM shard) FROM shard";
        using var r = cmd.ExecuteReader();
        if (!r.Read() || r.GetInt64(4) != 1) throw new InvalidDataException("the shard table must hold exactly one row");
        return new Content(checked((int)r.GetInt64(0)), r.GetInt64(1), r.GetInt64(2), r.GetInt64(3));
    }

    private static void QuickCheck(SqliteConnection conn, string file)
    {
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "PRAGMA quick_check;";
        string result = Convert.ToString(cmd.ExecuteScalar(), CultureInfo.InvariantCulture) ?? "";
        if (!string.Equals(result, "ok", StringComparison.Ordinal))
            throw new BackupCorruptException(file, $"'{file}' fails SQLite's quick_check: {result}");
    }

    private static void Attach(SqliteConnection conn, string file)
    {
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "ATTACH DATABASE @file AS src";
        cmd.Parameters.AddWithValue("@file", file);
        cmd.ExecuteNonQuery();
    }

    private static void Exec(SqliteConnection conn, SqliteTransaction tx, string sql, int shard)
    {
        using var cmd = conn.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.Parameters.AddWithValue("@s", shard);
        cmd.ExecuteNonQuery();
    }

    private static SqliteConnection Open(string file, SqliteOpenMode mode)
    {
        var conn = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = file, Mode = mode, Pooling = false }.ToString());
        try
        {
            conn.Open();
            SqliteSetup.Execute(conn, $"PRAGMA busy_timeout={SqliteSetup.BusyTimeoutMs.ToString(CultureInfo.InvariantCulture)};");
            return conn;
        }
        catch
        {
            conn.Dispose();
            throw;
        }
    }
}
