using SQLitePCL;
using Microsoft.Data.Sqlite;

namespace Replication.Engine.Storage;

/// <summary>
/// One SQLite file of the key-value state machine: every shard a node hosts (state.db, the layout of one file per node), or
/// one shard (shards/shard-N.db, the layout of a file per shard). <see cref="KvStore"/> routes each shard to its file; see
/// DESIGN.md, "Storage". Its tables carry the shard's id in every row either way, so the same code serves both layouts.
///
/// Contract: <see cref="Apply"/> applies committed Raft entries and records the shard's applied
/// index and term in the same transaction, so after any crash the applied index describes
/// exactly the data present: replay from it neither skips nor repeats an entry.
///
/// Durability: synchronous=NORMAL, so on power loss the last commits may be lost (never torn).
/// That is safe because the state machine is derived data: the node acknowledges a write once
/// the Raft log (raft.db, synchronous=FULL) holds it, and on restart replays the log from this
/// store's own applied index. Not fsyncing here takes an fsync per apply batch off the write path.
///
/// Keys are TEXT in UTF-8 with SQLite's BINARY collation, so the order of keys (and of
/// <see cref="Scan"/>) is UTF-8 byte order, which is Unicode code point order; see <see cref="CompareKeys"/>.
///
/// Threads: <see cref="Apply"/> uses the single writer connection and must be called only from
/// the node loop thread. Every read method is thread-safe and may run while Apply commits:
/// each call opens its own pooled read connection and sees the last committed state (WAL readers
/// never block the writer, nor it them).
/// </summary>
internal sealed partial class ShardDb : IDisposable
{
    /// <summary>On-disk schema version (PRAGMA user_version). Bump it, with a migration, on any schema change.</summary>
    public const int SchemaVersion = 5; // 2: durability_mark (see Flush); 3: shard_range (splits); 4: snapshot_install; 5: kv_staged, snapshot_stage

    /// <summary>PRAGMA application_id of a state.db ("RPLK"), so it is never mistaken for a raft.db.</summary>
    internal const int ApplicationId = 0x52504C4B;

    // kv is WITHOUT ROWID: the rows live in the (shard, key) B-tree itself, so a point read is
    // one descent and a prefix or range read is a contiguous walk of leaf pages.
    private const string CreateSql = """
        CREATE TABLE IF NOT EXISTS kv(
            shard INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
            version INTEGER NOT NULL, modified_index INTEGER NOT NULL,
            PRIMARY KEY(shard, key)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS applied(
            shard INTEGER PRIMARY KEY, idx INTEGER NOT NULL, term INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS durability_mark(id INTEGER PRIMARY KEY, flushes INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS shard_range(
            shard INTEGER PRIMARY KEY, start INTEGER NOT NULL, last INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS snapshot_install(
            shard INTEGER PRIMARY KEY, idx INTEGER NOT NULL, term INTEGER NOT NULL);
        """ + StagedInstallSql;

    /// <summary>A snapshot installed in bounded steps over a shard that holds data (ShardDb.StagedInstall.cs): its staged rows,
    /// and its marker (done_through: the last key the swap has carried over; the range the snapshot carries).</summary>
    private const string StagedInstallSql = """
        CREATE TABLE IF NOT EXISTS kv_staged(
            shard INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
            version INTEGER NOT NULL, modified_index INTEGER NOT NULL,
            PRIMARY KEY(shard, key)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS snapshot_stage(
            shard INTEGER PRIMARY KEY, idx INTEGER NOT NULL, term INTEGER NOT NULL, swapping INTEGER NOT NULL,
            done_through TEXT, range_start INTEGER, range_last INTEGER);
        """;

    /// <summary>Version 4 to 5: the tables of a staged install; a version-4 file has none in progress.</summary>
    private const string MigrateFrom4Sql = StagedInstallSql + "PRAGMA user_version=5;";

    /// <summary>Version 3 to 4: the marker of a snapshot installed in batches (ShardDb.Snapshot.cs); a version-3 file has
    /// none in progress.</summary>
    private const string MigrateFrom3Sql = """
        CREATE TABLE IF NOT EXISTS snapshot_install(
            shard INTEGER PRIMARY KEY, idx INTEGER NOT NULL, term INTEGER NOT NULL);
        PRAGMA user_version=4;
        """;

    /// <summary>
    /// The page size of a new state.db. kv is WITHOUT ROWID, so a row lives in a leaf of the (shard, key) B-tree, and a
    /// row too large for the leaf keeps about 490 bytes there and spills the rest into an overflow page of its own. With
    /// SQLite's default 4 KiB pages that happens past about 1,000 bytes: a 1,000-byte value took a whole overflow page for
    /// its last 540 bytes, and a shard of such rows filled 4.5 times its bytes (a 33 MB shard: 150 MB of pages), all of
    /// which a snapshot reads and its receiver writes twice (WAL, checkpoint): the ring bench's move streamed and stored
    /// at 10-30 MB/s and slowed every write on the disk meanwhile. With 8 KiB pages rows up to about 2,000 bytes stay in
    /// the leaf. A file created before keeps its 4 KiB pages (SQLite fixes the size at creation in WAL mode).
    /// </summary>
    public const int PageSize = 8192;

    // WAL checkpoints: a large apply batch of random keys dirties a B-tree page per key, and SQLite's default
    // auto-checkpoint (1,000 pages, run by the committing writer: the node loop) then paid a checkpoint every few
    // import batches, inline. They run on a thread of their own (WalCheckpointer), the writer's auto-checkpoint
    // kept only as the safety valve that lets the WAL start over.

    /// <summary>
    /// The writer's page cache, in KiB (PRAGMA cache_size, negative = KiB). SQLite's default, 2 MiB, holds 250 of the 8 KiB
    /// pages: an import of random keys missed it for nearly every key's leaf, and read the page back from the WAL or the
    /// file (about 2 preads and 18 KB read per key applied, /proc/self/io around 100,000 keys applied in 125-key entries).
    /// Pages are allocated as they are read, so a small store uses little of it.
    /// </summary>
    public const int WriterCacheKiB = 64 * 1024;

    private readonly WalCheckpointer _checkpointer;

    /// <summary>Background WAL checkpoint passes run so far (tests).</summary>
    internal long CheckpointPasses => _checkpointer.Passes;

    /// <summary>Waits (bounded) until the checkpointing thread has run a pass (tests).</summary>
    internal bool WaitForCheckpointPass(TimeSpan bound) => _checkpointer.WaitForPass(bound);

    private readonly string _filePath;
    private readonly Func<int, bool> _foundsNoneOf;

    /// <summary>The file this store keeps.</summary>
    public string FilePath => _filePath;
    private readonly string _readerConnectionString;
    private readonly SqliteConnection _conn;
    private readonly SqliteCommand _selectApplied;
    private readonly SqliteCommand _upsertApplied;
    private readonly SqliteCommand _selectVersion;
    private readonly SqliteCommand _upsertKv;
    private readonly SqliteCommand _deleteKv;
    /// <summary>The upsert of <see cref="_upsertKv"/> as SQLite's own statement, for snapshot rows bound as UTF-8 (UpsertChunk);
    /// prepared at the first install. Loop thread only.</summary>
    private SQLitePCL.sqlite3_stmt? _installRow;

    /// <summary>Writes one row of a shard (parameters 1-5: shard, key, value, version, modified index), replacing it.</summary>
    private const string UpsertKvSql = """
        INSERT INTO kv(shard, key, value, version, modified_index) VALUES(@shard, @key, @value, @version, @idx)
        ON CONFLICT(shard, key) DO UPDATE SET value = excluded.value, version = excluded.version, modified_index = excluded.modified_index
        """;
    private bool _disposed;

    /// <summary>Opens the file at <paramref name="filePath"/>, creating it (and its schema) if absent. A split applied here founds
    /// no replica of a new shard for which <paramref name="foundsNoneOf"/> is true (see ApplySplit). The writer's page cache is
    /// <paramref name="cacheKiB"/> at most. Background checkpoint passes run on <paramref name="checkpoints"/> (shared by a
    /// store's files), or on a thread of this file's own when null.</summary>
    /// <exception cref="StorageCorruptException">The file has an unknown schema version or belongs to another store.</exception>
    public ShardDb(string filePath, Func<int, bool> foundsNoneOf, int cacheKiB = WriterCacheKiB, CheckpointWorker? checkpoints = null)
    {
        _filePath = filePath;
        _foundsNoneOf = foundsNoneOf;
        _conn = SqliteSetup.OpenWriter(filePath, SqliteSynchronous.Normal, PageSize);
        try
        {
            Migrate();
            SqliteSetup.EnsureSchema(_conn, filePath, ApplicationId, SchemaVersion, CreateSql);
            SqliteSetup.Execute(_conn, $"PRAGMA cache_size=-{cacheKiB}; PRAGMA wal_autocheckpoint={WalCheckpointer.WriterAutoCheckpointPages};");
            _selectApplied = Prepare("SELECT idx, term FROM applied WHERE shard = @shard", "@shard");
            _upsertApplied = Prepare("""
                INSERT INTO applied(shard, idx, term) VALUES(@shard, @idx, @term)
                ON CONFLICT(shard) DO UPDATE SET idx = excluded.idx, term = excluded.term
                """, "@shard", "@idx", "@term");
            _selectVersion = Prepare("SELECT version FROM kv WHERE shard = @shard AND key = @key", "@shard", "@key");
            _upsertKv = Prepare(UpsertKvSql, "@shard", "@key", "@value", "@version", "@idx");
            _deleteKv = Prepare("DELETE FROM kv WHERE shard = @shard AND key = @key", "@shard", "@key");
            // The key hash, for splits: signed so SQLite compares it in the same order as the unsigned hash.
            _conn.CreateFunction("khash", (string key) => Signed(Ring.KeyHash.Of(key)), isDeterministic: true);
            LoadRanges();
        }
        catch
        {
            _conn.Dispose();
            throw;
        }
        _readerConnectionString = SqliteSetup.ReaderConnectionString(filePath);
        _checkpointer = new WalCheckpointer(filePath, checkpoints);
    }

    private readonly System.Collections.Concurrent.ConcurrentStack<PointReader> _pointReaders = new(); // ShardDb.Read.cs, Get

    // Key counts per shard (see Count): _counts holds the shards whose count is known; _commits counts the commits that
    // changed rows. Both guarded by _countGate, which a commit holds from before it commits until it has adjusted them.
    private readonly object _countGate = new();
    private readonly Dictionary<int, long> _counts = new();
    private long _commits;

    /// <summary>Commits <paramref name="tx"/>, then adjusts the known key counts: by <paramref name="delta"/> keys for
    /// <paramref name="shard"/>, and forgets those of <paramref name="recount"/> (their rows were replaced wholesale).</summary>
    private void CommitCounted(SqliteTransaction tx, int shard, long delta, params int[] recount) =>
        CommitCounted(tx, [new KeyValuePair<int, long>(shard, delta)], recount);

    /// <summary>Commits <paramref name="tx"/>, then adjusts the known key counts of several shards (an apply batch,
    /// ShardDb.Apply.cs) and forgets those of <paramref name="recount"/>.</summary>
    private void CommitCounted(SqliteTransaction tx, IEnumerable<KeyValuePair<int, long>> deltas, IReadOnlyCollection<int> recount)
    {
        lock (_countGate)
        {
            tx.Commit();
            _commits++;
            foreach (var (shard, delta) in deltas)
                if (delta != 0 && _counts.TryGetValue(shard, out long n)) _counts[shard] = n + delta;
            foreach (int s in recount) _counts.Remove(s);
        }
        // Rows replaced wholesale (a snapshot's chunk, a split): a bulk change, so a background checkpoint pass now.
        if (recount.Count > 0) _checkpointer.NoteWritten(WalCheckpointer.PassRows);
    }

    // The hash range each split shard owns (a shard never split has no row: it accepts every key routed to it).
    private volatile Dictionary<int, (ulong Start, ulong Last)> _ranges = new();

    /// <summary>The hash range <paramref name="shard"/> owns since a split (null: never split, it owns what the map gives it). Thread-safe.</summary>
    public (ulong Start, ulong Last)? RangeOf(int shard) => _ranges.TryGetValue(shard, out var r) ? r : null;

    /// <summary>True when <paramref name="key"/> belongs to <paramref name="shard"/> as this state machine has applied it. Thread-safe.</summary>
    public bool Owns(int shard, string key) => Owns(_ranges, shard, key);

    private static bool Owns(IReadOnlyDictionary<int, (ulong Start, ulong Last)> ranges, int shard, string key)
    {
        if (!ranges.TryGetValue(shard, out var r)) return true;
        ulong h = Ring.KeyHash.Of(key);
        return h >= r.Start && h <= r.Last;
    }

    /// <summary>Shards whose range came from a split, with their ranges (a node re-hosts a split shard it holds rows of).</summary>
    public IReadOnlyDictionary<int, (ulong Start, ulong Last)> SplitRanges => _ranges;

    private void LoadRanges()
    {
        var ranges = new Dictionary<int, (ulong, ulong)>();
        using var cmd = _conn.CreateCommand();
        cmd.CommandText = "SELECT shard, start, last FROM shard_range";
        using var r = cmd.ExecuteReader();
        while (r.Read()) ranges[checked((int)r.GetInt64(0))] = (Unsigned(r.GetInt64(1)), Unsigned(r.GetInt64(2)));
        _ranges = ranges;
    }

    /// <summary>Brings a file of an earlier schema up to this one (3 to 4 to 5), in one transaction.</summary>
    private void Migrate()
    {
        using var tx = _conn.BeginTransaction();
        if (SqliteSetup.ExecuteScalarLong(_conn, tx, "PRAGMA application_id;") == ApplicationId)
        {
            if (SqliteSetup.ExecuteScalarLong(_conn, tx, "PRAGMA user_version;") == 3) SqliteSetup.Execute(_conn, tx, MigrateFrom3Sql);
            if (SqliteSetup.ExecuteScalarLong(_conn, tx, "PRAGMA user_version;") == 4) SqliteSetup.Execute(_conn, tx, MigrateFrom4Sql);
        }
        tx.Commit();
    }

    internal static long Signed(ulong hash) => (long)(hash ^ 0x8000_0000_0000_0000UL);
    internal static ulong Unsigned(long stored) => (ulong)stored ^ 0x8000_0000_0000_0000UL;

    /// <summary>A pragma's value on the writer connection (tests check synchronous and journal_mode).</summary>
    internal string WriterPragma(string name) => SqliteSetup.Pragma(_conn, name);

    /// <summary>
    /// Closes the file for its deletion (KvStore.Retire: a replica that moved away, or a file replaced by an image): as
    /// <see cref="Dispose"/>, but the last connection closes without checkpointing the WAL into the database file
    /// (SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE), work for a file nobody reads again. That checkpoint of a 40 MB shard's
    /// file held the node's loop, and every shard it serves, 10-20 ms (ring bench, 2026-12-03). A background checkpoint
    /// pass of the file under way is interrupted rather than waited for.
    /// </summary>
    public void Discard()
    {
        if (_disposed) return;
        var handle = _conn.Handle;
        if (handle is not null) raw.sqlite3_db_config(handle, raw.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, out _);
        _checkpointer.Abandon(); // a background pass under way is cut short, not waited for
        Dispose();
    }

    /// <summary>
    /// Closes the writer and drops this file's pooled readers. Readers still enumerating a
    /// <see cref="Scan"/> keep their own connection until they are disposed.
    /// </summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        RollbackApplyBatch(); // a batch never committed stores nothing (ShardDb.Apply.cs)
        _selectApplied.Dispose();
        _upsertApplied.Dispose();
        _selectVersion.Dispose();
        _upsertKv.Dispose();
        _deleteKv.Dispose();
        _installRow?.Dispose();
        _stageRow?.Dispose();
        _checkpointer.Dispose(); // before the writer: the last connection to close checkpoints the rest and removes the WAL
        while (_pointReaders.TryPop(out var reader)) reader.Dispose();
        using (var pooled = new SqliteConnection(_readerConnectionString)) SqliteConnection.ClearPool(pooled);
        _conn.Dispose();
    }

    private SqliteCommand Prepare(string sql, params string[] parameterNames)
    {
        var cmd = _conn.CreateCommand();
        cmd.CommandText = sql;
        foreach (var name in parameterNames) cmd.Parameters.Add(new SqliteParameter { ParameterName = name });
        cmd.Prepare(); // compiled once, re-bound per op: the statement is reused for the store's lifetime
        return cmd;
    }
}
