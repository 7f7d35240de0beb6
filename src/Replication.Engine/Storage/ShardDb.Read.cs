using Microsoft.Data.Sqlite;

namespace Replication.Engine.Storage;

/// <summary>
/// The read side of the state machine. Thread-safe: every call opens its own pooled read
/// connection, so reads run concurrently with each other and with <see cref="Apply"/>.
/// </summary>
internal sealed partial class ShardDb
{
    // Scan SQL, one per bound shape, each an index range over PRIMARY KEY(shard, key)
    // (a test checks the plans with EXPLAIN QUERY PLAN).
    internal const string ScanAllSql = "SELECT key, value, version, modified_index FROM kv WHERE shard = @shard ORDER BY key";
    internal const string ScanFromSql = "SELECT key, value, version, modified_index FROM kv WHERE shard = @shard AND key >= @lo ORDER BY key";
    internal const string ScanRangeSql = "SELECT key, value, version, modified_index FROM kv WHERE shard = @shard AND key >= @lo AND key < @hi ORDER BY key";
    internal const string ScanAfterSql = "SELECT key, value, version, modified_index FROM kv WHERE shard = @shard AND key > @lo AND key < @hi ORDER BY key";
    internal const string ScanAfterOpenSql = "SELECT key, value, version, modified_index FROM kv WHERE shard = @shard AND key > @lo ORDER BY key";

    /// <summary>The index of the last entry applied to <paramref name="shard"/>; 0 if none.</summary>
    public long AppliedIndex(int shard) => ReadApplied(shard).Index;

    /// <summary>The term of the last entry applied to <paramref name="shard"/>; 0 if none.</summary>
    public long AppliedTerm(int shard) => ReadApplied(shard).Term;

    /// <summary>The key as last applied, or null if absent.</summary>
    /// <exception cref="InvalidKeyException">The key is empty, too long or not valid UTF-16.</exception>
    public StoredKey? Get(int shard, string key)
    {
        KvLimits.Validate(key, null);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_pointReaders.TryPop(out var reader)) reader = new PointReader(_readerConnectionString);
        StoredKey? found;
        try
        {
            found = reader.Read(shard, key);
        }
        catch
        {
            reader.Dispose(); // a failed read's connection is not reused
            throw;
        }
        if (_disposed || _pointReaders.Count >= MaxPointReaders) reader.Dispose();
        else
        {
            _pointReaders.Push(reader);
            if (_disposed && _pointReaders.TryPop(out var late)) late.Dispose(); // Dispose ran meanwhile: do not keep it open
        }
        return found;
    }

    /// <summary>Point readers kept open between <see cref="Get"/> calls: about as many as reads run at once.</summary>
    private const int MaxPointReaders = 8;

    /// <summary>
    /// A read connection kept open with the point read prepared, used by one <see cref="Get"/> at a time and then returned
    /// to <see cref="_pointReaders"/>. Opening a pooled connection per read ran its two PRAGMAs and prepared the SELECT
    /// again every time: three statements compiled for one index lookup. Each read is still its own (autocommit) read
    /// transaction, so it sees the last commit.
    /// </summary>
    private sealed class PointReader : IDisposable
    {
        private readonly SqliteConnection _conn;
        private readonly SqliteCommand _get;
        private readonly SqliteParameter _shard;
        private readonly SqliteParameter _key;

        public PointReader(string connectionString)
        {
            _conn = SqliteSetup.OpenReader(connectionString);
            _get = _conn.CreateCommand();
            _get.CommandText = "SELECT value, version, modified_index FROM kv WHERE shard = @shard AND key = @key";
            _shard = _get.Parameters.Add("@shard", SqliteType.Integer);
            _key = _get.Parameters.Add("@key", SqliteType.Text);
            _get.Prepare();
        }

        public StoredKey? Read(int shard, string key)
        {
            _shard.Value = shard;
            _key.Value = key;
            using var r = _get.ExecuteReader();
            return r.Read() ? new StoredKey(key, r.GetString(0), r.GetInt64(1), r.GetInt64(2)) : null;
        }

        public void Dispose()
        {
            _get.Dispose();
            _conn.Dispose();
        }
    }

    /// <summary>
    /// The shard's keys that start with <paramref name="prefix"/> ("" = all keys), in UTF-8 byte
    /// order (<see cref="CompareKeys"/>), streamed from one read transaction: the enumeration is
    /// a consistent snapshot, and holds a read connection (and keeps the WAL from being
    /// checkpointed past it) until it is disposed, so enumerate promptly.
    /// </summary>
    /// <exception cref="InvalidKeyException">The prefix is not valid UTF-16 (ErrorId InvalidPrefix).</exception>
    public IEnumerable<StoredKey> Scan(int shard, string prefix)
    {
        KvLimits.ValidatePrefix(prefix); // eagerly, not at the first MoveNext
        ObjectDisposedException.ThrowIf(_disposed, this);
        return ScanCore(shard, prefix, PrefixUpperBound(prefix));
    }

    /// <summary>
    /// Keys with <paramref name="prefix"/> that sort strictly after <paramref name="after"/> (a key with
    /// the prefix, e.g. the last one of the previous page; null = from the start), in key order,
    /// streaming. An index seek, so each page of a long paged scan reads only its own rows.
    /// </summary>
    public IEnumerable<StoredKey> ScanAfter(int shard, string prefix, string? after)
    {
        if (after is null) return Scan(shard, prefix);
        KvLimits.ValidatePrefix(prefix);
        ObjectDisposedException.ThrowIf(_disposed, this);
        string? upper = PrefixUpperBound(prefix);
        return Query(shard, upper is null ? ScanAfterOpenSql : ScanAfterSql, after, upper);
    }

    /// <summary>
    /// Number of keys in the shard, as last committed. Counted once (O(keys)) and then kept by the writer: every
    /// commit adjusts it by the keys its ops created and deleted, and a commit that replaces rows wholesale (snapshot,
    /// split, import, drop) forgets it, to be counted again at the next call. Status polls ask for it several times a
    /// second per peer; counting the index each time cost a node a fifth of a core idle and page reads per write
    /// (bench finding).
    /// </summary>
    public long Count(int shard)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        long commits;
        lock (_countGate)
        {
            if (_counts.TryGetValue(shard, out long known)) return known;
            commits = _commits;
        }
        long counted;
        using (var conn = SqliteSetup.OpenReader(_readerConnectionString))
        using (var cmd = conn.CreateCommand())
        {
            cmd.CommandText = "SELECT count(*) FROM kv WHERE shard = @shard";
            cmd.Parameters.AddWithValue("@shard", shard);
            counted = (long)cmd.ExecuteScalar()!;
        }
        lock (_countGate)
        {
            // Kept only when no commit completed since the count began: the count then saw exactly the state that every
            // later commit adjusts (a commit holds the gate from before it commits until it has adjusted the counts).
            if (_commits == commits) _counts[shard] = counted;
        }
        return counted;
    }

    /// <summary>Bytes the store occupies: the main file's pages plus the current WAL file.</summary>
    public long SizeBytes()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        long pages;
        using (var conn = SqliteSetup.OpenReader(_readerConnectionString))
        using (var cmd = conn.CreateCommand())
        {
            cmd.CommandText = "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()";
            pages = (long)cmd.ExecuteScalar()!;
        }
        var wal = new FileInfo(_filePath + "-wal");
        return pages + (wal.Exists ? wal.Length : 0);
    }

    /// <summary>
    /// Orders two keys as SQLite orders them: by UTF-8 bytes, i.e. by Unicode code point. This
    /// differs from <see cref="string.CompareOrdinal(string, string)"/> (UTF-16 code units) only
    /// where a surrogate pair (U+10000 and above) meets U+E000..U+FFFF: UTF-16 puts the pair
    /// first, UTF-8 puts it last. The cluster merges per-shard scans with this. Allocation-free.
    /// </summary>
    public static int CompareKeys(string a, string b)
    {
        int n = Math.Min(a.Length, b.Length);
        int i = a.AsSpan(0, n).CommonPrefixLength(b.AsSpan(0, n));
        if (i == n) return a.Length.CompareTo(b.Length);
        return CodePointOrder(a[i]).CompareTo(CodePointOrder(b[i]));

        // Moves surrogates (D800..DFFF) above E000..FFFF, keeping every other order; at the
        // first differing unit this yields code point order (the ICU "fix-up" technique).
        static int CodePointOrder(char c) => c < 0xD800 ? c : c < 0xE000 ? c + 0x2000 : c - 0x800;
    }

    /// <summary>
    /// The least string greater than every string that starts with <paramref name="prefix"/>,
    /// in code point order: the prefix with its last code point incremented (skipping the
    /// surrogate range; U+FFFF becomes U+10000, a surrogate pair). A trailing U+10FFFF cannot be
    /// incremented, so it is dropped and the code point before it is incremented. Null when no
    /// such bound exists ("" or only U+10FFFF): the range is then open above.
    /// </summary>
    internal static string? PrefixUpperBound(string prefix)
    {
        int end = prefix.Length;
        while (end > 0)
        {
            int start = end - 1;
            if (char.IsLowSurrogate(prefix[start]) && start > 0 && char.IsHighSurrogate(prefix[start - 1])) start--;
            int cp = char.ConvertToUtf32(prefix, start);
            if (cp < 0x10FFFF)
            {
                int next = cp + 1 == 0xD800 ? 0xE000 : cp + 1;
                return string.Concat(prefix.AsSpan(0, start), char.ConvertFromUtf32(next));
            }
            end = start;
        }
        return null;
    }

    private IEnumerable<StoredKey> ScanCore(int shard, string prefix, string? upper) =>
        prefix.Length == 0
            ? Query(shard, ScanAllSql, null, null)
            : Query(shard, upper is null ? ScanFromSql : ScanRangeSql, prefix, upper);

    /// <summary>Runs one of the scan statements (@lo, @hi bound when given) on its own reader, streaming.</summary>
    private IEnumerable<StoredKey> Query(int shard, string sql, string? lo, string? hi)
    {
        using var conn = SqliteSetup.OpenReader(_readerConnectionString);
        using var cmd = conn.CreateCommand();
        cmd.CommandText = sql;
        cmd.Parameters.AddWithValue("@shard", shard);
        if (lo is not null) cmd.Parameters.AddWithValue("@lo", lo);
        if (hi is not null) cmd.Parameters.AddWithValue("@hi", hi);
        using var r = cmd.ExecuteReader();
        while (r.Read()) yield return new StoredKey(r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3));
    }

    /// <summary>
    /// <paramref name="shard"/>'s applied index and term (0 and 0 when nothing was applied) and its hash range (null: never
    /// split) in <paramref name="tx"/>, in one statement: when it is a read transaction's first read, it fixes the snapshot
    /// the three come from (a snapshot's view, a consistency capture, an image).
    /// </summary>
    internal static (long Index, long Term, (ulong Start, ulong Last)? Range) ReadState(SqliteConnection conn, SqliteTransaction tx, int shard)
    {
        using var cmd = conn.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "SELECT coalesce((SELECT idx FROM applied WHERE shard = @s), 0), coalesce((SELECT term FROM applied WHERE shard = @s), 0),"
            + " (SELECT start FROM shard_range WHERE shard = @s), (SELECT last FROM shard_range WHERE shard = @s)";
        cmd.Parameters.AddWithValue("@s", shard);
        using var r = cmd.ExecuteReader();
        r.Read();
        (ulong, ulong)? range = r.IsDBNull(2) ? null : (Unsigned(r.GetInt64(2)), Unsigned(r.GetInt64(3)));
        return (r.GetInt64(0), r.GetInt64(1), range);
    }

    private (long Index, long Term) ReadApplied(int shard)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var conn = SqliteSetup.OpenReader(_readerConnectionString);
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "SELECT idx, term FROM applied WHERE shard = @shard";
        cmd.Parameters.AddWithValue("@shard", shard);
        using var r = cmd.ExecuteReader();
        return r.Read() ? (r.GetInt64(0), r.GetInt64(1)) : (0, 0);
    }
}
