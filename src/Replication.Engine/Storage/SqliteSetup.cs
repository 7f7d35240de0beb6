using System.Globalization;
using Microsoft.Data.Sqlite;

namespace Replication.Engine.Storage;

/// <summary>
/// Opens the connections both stores use, with the pragmas the design depends on (DESIGN.md,
/// "Storage"): WAL so readers never block the writer, a per-store synchronous level, a busy
/// timeout so a reader that briefly holds a lock does not fail the writer, and no foreign keys
/// (the schemas have none; the check would only cost time). It also owns the schema-version
/// check, so both files reject a schema they do not know in the same way.
/// Stateless and thread-safe.
/// </summary>
internal static class SqliteSetup
{
    /// <summary>How long a statement waits on a lock held by another connection before failing.</summary>
    public const int BusyTimeoutMs = 5000;

    /// <summary>
    /// Opens the single writer connection of a store. The writer is not pooled: its owner
    /// keeps it for the store's lifetime, and closing it must really release the file.
    /// </summary>
    /// <param name="pageSize">The page size a NEW file is created with (null: SQLite's default, 4 KiB). An existing file
    /// keeps the one it has: in WAL mode SQLite fixes it when the file is created.</param>
    public static SqliteConnection OpenWriter(string filePath, SqliteSynchronous synchronous, int? pageSize = null)
    {
        var conn = new SqliteConnection(ConnectionString(filePath, pooling: false, SqliteOpenMode.ReadWriteCreate));
        try
        {
            conn.Open();
            // Before journal_mode: switching an empty file to WAL writes its header, page size included.
            if (pageSize is int size) Execute(conn, $"PRAGMA page_size={size.ToString(CultureInfo.InvariantCulture)};");
            // journal_mode=WAL is persistent in the file; setting it on every open is cheap and
            // converts a file created elsewhere. It must run outside a transaction.
            string mode = ExecuteScalarString(conn, "PRAGMA journal_mode=WAL;");
            if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
                throw new StorageCorruptException($"'{filePath}': SQLite refused WAL mode (journal_mode is '{mode}').");
            Execute(conn,
                $"PRAGMA synchronous={synchronous.ToString().ToUpperInvariant()};" +
                $"PRAGMA busy_timeout={BusyTimeoutMs.ToString(CultureInfo.InvariantCulture)};" +
                "PRAGMA foreign_keys=OFF;");
            return conn;
        }
        catch
        {
            conn.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Connection string for pooled read connections. Readers are opened per call (and pooled by
    /// Microsoft.Data.Sqlite), so each call sees the latest committed state, and any number of
    /// threads can read while the writer commits.
    /// </summary>
    public static string ReaderConnectionString(string filePath) => ConnectionString(filePath, pooling: true, SqliteOpenMode.ReadWrite);

    /// <summary>Opens a pooled reader and guards it against writes (query_only).</summary>
    public static SqliteConnection OpenReader(string connectionString)
    {
        var conn = new SqliteConnection(connectionString);
        try
        {
            conn.Open();
            Execute(conn,
                $"PRAGMA busy_timeout={BusyTimeoutMs.ToString(CultureInfo.InvariantCulture)};" +
                "PRAGMA query_only=1;");
            return conn;
        }
        catch
        {
            conn.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Creates the schema of a new file or checks the version of an existing one.
    /// <paramref name="applicationId"/> tells the two stores' files apart (PRAGMA application_id),
    /// so a state.db opened as a raft.db is refused rather than silently given a second schema.
    /// A file with an unknown schema version, another application id, or a non-UTF-8 text
    /// encoding (key order would no longer be UTF-8 byte order) throws <see cref="StorageCorruptException"/>.
    /// </summary>
    public static void EnsureSchema(SqliteConnection conn, string filePath, int applicationId, int schemaVersion, string createSql)
    {
        using var tx = conn.BeginTransaction();
        long appId = ExecuteScalarLong(conn, tx, "PRAGMA application_id;");
        long version = ExecuteScalarLong(conn, tx, "PRAGMA user_version;");
        if (appId == 0 && version == 0)
        {
            // A new file (or one that never got past creation: the DDL is idempotent).
            Execute(conn, tx, createSql);
            Execute(conn, tx,
                $"PRAGMA application_id={applicationId.ToString(CultureInfo.InvariantCulture)};" +
                $"PRAGMA user_version={schemaVersion.ToString(CultureInfo.InvariantCulture)};");
        }
        else if (appId != applicationId)
        {
            throw new StorageCorruptException(
                $"'{filePath}' belongs to another store (application_id {appId}, expected {applicationId}).");
        }
        else if (version != schemaVersion)
        {
            throw new StorageCorruptException(
                $"'{filePath}' has schema version {version}; this build knows only version {schemaVersion}.");
        }
        string encoding = ExecuteScalarString(conn, "PRAGMA encoding;", tx);
        if (!string.Equals(encoding, "UTF-8", StringComparison.OrdinalIgnoreCase))
            throw new StorageCorruptException($"'{filePath}' uses text encoding {encoding}; keys must be stored as UTF-8.");
        tx.Commit();
    }

    /// <summary>
    /// <c>PRAGMA quick_check</c> on <paramref name="conn"/>'s database (see <see cref="KvStore.CheckIntegrity"/>): throws
    /// <see cref="StorageCorruptException"/> naming <paramref name="filePath"/> and up to 10 problems unless SQLite answers "ok".
    /// SQLite's own corruption errors while checking are reported the same way.
    /// </summary>
    public static void QuickCheck(SqliteConnection conn, string filePath)
    {
        var problems = StorageErrors.MapCorruption(filePath, () =>
        {
            using var cmd = conn.CreateCommand();
            cmd.CommandText = "PRAGMA quick_check(10);";
            using var r = cmd.ExecuteReader();
            var lines = new List<string>();
            while (r.Read()) lines.Add(r.GetString(0));
            return lines;
        });
        if (problems is ["ok"]) return;
        throw new StorageCorruptException($"'{filePath}' fails SQLite's integrity check (quick_check): {string.Join("; ", problems)}.") { Target = filePath };
    }

    public static void Execute(SqliteConnection conn, string sql) => Execute(conn, null, sql);

    /// <summary>The value of a pragma on <paramref name="conn"/> (e.g. "synchronous").</summary>
    public static string Pragma(SqliteConnection conn, string name) => ExecuteScalarString(conn, "PRAGMA " + name);

    public static void Execute(SqliteConnection conn, SqliteTransaction? tx, string sql)
    {
        using var cmd = conn.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    public static long ExecuteScalarLong(SqliteConnection conn, SqliteTransaction? tx, string sql)
    {
        using var cmd = conn.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        return Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    private static string ExecuteScalarString(SqliteConnection conn, string sql, SqliteTransaction? tx = null)
    {
        using var cmd = conn.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        return Convert.ToString(cmd.ExecuteScalar(), CultureInfo.InvariantCulture) ?? "";
    }

    // Readers open ReadWrite, not ReadOnly: a WAL reader must be able to create the -shm file,
    // and ReadWrite (not Create) means a reader never conjures an empty file at a wrong path.
    private static string ConnectionString(string filePath, bool pooling, SqliteOpenMode mode) => new SqliteConnectionStringBuilder
    {
        DataSource = filePath,
        Mode = mode,
        Pooling = pooling,
    }.ToString();
}

/// <summary>Values of PRAGMA synchronous the stores use.</summary>
internal enum SqliteSynchronous
{
    /// <summary>In WAL mode: a commit may be lost on power loss, never corrupted.</summary>
    Normal,

    /// <summary>In WAL mode: the WAL is fsynced at every commit; a commit that returned is durable.</summary>
    Full,
}
