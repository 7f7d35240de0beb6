using System.Buffers.Binary;
using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Replication.Engine.Storage;
using Xunit;
using Xunit.Abstractions;

namespace Replication.Engine.Tests.Storage;

/// <summary>
/// Shard images (ShardImageReader, ShardImageWriter): the bytes of a live WAL-mode SQLite file, copied while another
/// connection commits, recover on the receiver to exactly the rows of one commit at or after the reader's open; the
/// WAL's dead frames past a restart are not sent; a WAL that starts over under a reader on read mark 0 is discarded
/// rather than half-replayed; damaged and truncated streams are refused and leave no files.
/// <para>
/// The source: kv(key, value, n) WITHOUT ROWID and applied(idx). Commit n applies a few upserts and deletes of random
/// keys (values of random length, some past a page: overflow pages), a marker row "~m{n}", and applied.idx = n, in one
/// transaction. A commit's operations are kept, so the state at any index can be rebuilt and compared row by row.
/// </para>
/// </summary>
public sealed class ShardImageTests(ITestOutputHelper output)
{
    /// <summary>One upsert (length >= 0: value of that many characters) or delete (length -1) of key k{Key}.</summary>
    private readonly record struct Op(int Key, int Length);

    private const string Schema = """
        CREATE TABLE kv(key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL, n INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE applied(id INTEGER PRIMARY KEY, idx INTEGER NOT NULL);
        INSERT INTO applied(id, idx) VALUES(1, 0);
        """;

    private static string Key(int key) => $"k{key:D5}";
    private static string Marker(long n) => $"~m{n:D9}";

    /// <summary>The value commit <paramref name="n"/> writes to <paramref name="key"/>: its own for every (n, key).</summary>
    private static string Value(long n, string key, int length)
    {
        string head = $"{n}/{key}/";
        return length <= head.Length ? head[..length] : head + new string((char)('a' + (int)((n * 31 + key[^1]) % 16)), length - head.Length);
    }

    /// <summary>A writer connection on a WAL-mode source (created with the schema when new).</summary>
    private static SqliteConnection OpenSource(string path, int autoCheckpointPages, int pageSize = 4096)
    {
        var conn = TempFolder.Raw(path);
        Exec(conn, $"PRAGMA page_size={pageSize}; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000; PRAGMA wal_autocheckpoint={autoCheckpointPages};");
        if (Scalar(conn, "SELECT count(*) FROM sqlite_master WHERE name = 'kv'") == 0) Exec(conn, Schema);
        return conn;
    }

    private static void Exec(SqliteConnection conn, string sql)
    {
        using var cmd = conn.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private static long Scalar(SqliteConnection conn, string sql)
    {
        using var cmd = conn.CreateCommand();
        cmd.CommandText = sql;
        return Convert.ToInt64(cmd.ExecuteScalar());
    }

    /// <summary>Commit <paramref name="n"/>: its operations, its marker row and applied.idx = n, in one transaction.</summary>
    private static void Commit(SqliteConnection conn, long n, IReadOnlyList<Op> ops)
    {
        using var tx = conn.BeginTransaction();
        using var upsert = conn.CreateCommand();
        upsert.Transaction = tx;
        upsert.CommandText = "INSERT INTO kv(key, value, n) VALUES($k, $v, $n) ON CONFLICT(key) DO UPDATE SET value = excluded.value, n = excluded.n";
        var k = upsert.Parameters.Add("$k", SqliteType.Text);
        var v = upsert.Parameters.Add("$v", SqliteType.Text);
        var nn = upsert.Parameters.Add("$n", SqliteType.Integer);
        using var delete = conn.CreateCommand();
        delete.Transaction = tx;
        delete.CommandText = "DELETE FROM kv WHERE key = $k";
        var dk = delete.Parameters.Add("$k", SqliteType.Text);
        foreach (var op in ops)
        {
            string key = Key(op.Key);
            if (op.Length < 0)
            {
                dk.Value = key;
                delete.ExecuteNonQuery();
                continue;
            }
            k.Value = key;
            v.Value = Value(n, key, op.Length);
            nn.Value = n;
            upsert.ExecuteNonQuery();
        }
        k.Value = Marker(n);
        v.Value = "marker";
        nn.Value = n;
        upsert.ExecuteNonQuery();
        using var applied = conn.CreateCommand();
        applied.Transaction = tx;
        applied.CommandText = $"UPDATE applied SET idx = {n} WHERE id = 1";
        applied.ExecuteNonQuery();
        tx.Commit();
    }

    private static Op[] RandomOps(Random rng, int keys, int maxOps, int maxLength)
    {
        var ops = new Op[rng.Next(1, maxOps + 1)];
        for (int i = 0; i < ops.Length; i++)
            ops[i] = new Op(rng.Next(keys), rng.Next(4) == 0 ? -1 : rng.Next(1, maxLength));
        return ops;
    }

    /// <summary>The rows of a database (kv in key order, then applied.idx).</summary>
    private sealed record Content(long Index, List<(string Key, string Value, long N)> Rows);

    private static Content Read(string path)
    {
        using var conn = TempFolder.Raw(path);
        return Read(conn);
    }

    private static Content Read(SqliteConnection conn)
    {
        using var tx = conn.BeginTransaction(deferred: true);
        var rows = new List<(string, string, long)>();
        using (var cmd = conn.CreateCommand())
        {
            cmd.Transaction = tx;
            cmd.CommandText = "SELECT key, value, n FROM kv ORDER BY key";
            using var r = cmd.ExecuteReader();
            while (r.Read()) rows.Add((r.GetString(0), r.GetString(1), r.GetInt64(2)));
        }
        using var idx = conn.CreateCommand();
        idx.Transaction = tx;
        idx.CommandText = "SELECT idx FROM applied WHERE id = 1";
        return new Content(Convert.ToInt64(idx.ExecuteScalar()), rows);
    }

    /// <summary>The rows after commits 1..<paramref name="index"/> of <paramref name="log"/> (log[i] is commit i + 1).</summary>
    private static Content Expected(IReadOnlyList<Op[]> log, long index)
    {
        var state = new SortedDictionary<string, (string Value, long N)>(StringComparer.Ordinal);
        for (int i = 0; i < index; i++)
        {
            long n = i + 1;
            foreach (var op in log[i])
            {
                string key = Key(op.Key);
                if (op.Length < 0) state.Remove(key);
                else state[key] = (Value(n, key, op.Length), n);
            }
            state[Marker(n)] = ("marker", n);
        }
        return new Content(index, state.Select(e => (e.Key, e.Value.Value, e.Value.N)).ToList());
    }

    private static void AssertSameContent(Content expected, Content actual)
    {
        Assert.Equal(expected.Index, actual.Index);
        Assert.Equal(expected.Rows.Count, actual.Rows.Count);
        for (int i = 0; i < expected.Rows.Count; i++)
            Assert.True(expected.Rows[i] == actual.Rows[i], $"row {i}: expected {Describe(expected.Rows[i])}, found {Describe(actual.Rows[i])}");
    }

    private static string Describe((string Key, string Value, long N) row) => $"({row.Key}, {row.Value.Length} chars, n {row.N})";

    private static string IntegrityCheck(string path)
    {
        using var conn = TempFolder.Raw(path);
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "PRAGMA integrity_check";
        using var r = cmd.ExecuteReader();
        var lines = new List<string>();
        while (r.Read()) lines.Add(r.GetString(0));
        return string.Join("; ", lines);
    }

    /// <summary>Streams an image of <paramref name="source"/> into a writer at <paramref name="target"/> in pieces of random
    /// size (or of <paramref name="piece"/> bytes), completes it, and checks the single file left.</summary>
    private static ShardImageReader CopyImage(string source, string target, Random rng, int? piece = null)
    {
        var reader = ShardImageReader.Open(source);
        try
        {
            using var writer = new ShardImageWriter(target);
            var buffer = new byte[piece ?? 300_000];
            while (true)
            {
                int want = piece ?? rng.Next(1, buffer.Length + 1);
                int n = reader.Read(buffer.AsSpan(0, want));
                if (n == 0) break;
                // The receiver gets the bytes split another way again.
                for (int at = 0; at < n;)
                {
                    int part = piece ?? Math.Min(n - at, rng.Next(1, 100_000));
                    writer.Write(buffer.AsSpan(at, part));
                    at += part;
                }
            }
            Assert.Equal(reader.Length, reader.Position);
            writer.Complete();
            Assert.Equal(reader.Length, writer.Received);
        }
        finally
        {
            reader.Dispose();
        }
        Assert.True(File.Exists(target));
        Assert.False(File.Exists(target + "-wal"), "no -wal beside the image");
        Assert.False(File.Exists(target + "-shm"), "no -shm beside the image");
        return reader;
    }

    /// <summary>The whole stream of an image of <paramref name="source"/>.</summary>
    private static byte[] ImageBytes(string source)
    {
        using var reader = ShardImageReader.Open(source);
        var bytes = new byte[reader.Length];
        int at = 0;
        while (reader.Read(bytes.AsSpan(at)) is int n and > 0) at += n;
        Assert.Equal(bytes.Length, at);
        Assert.Equal(0, reader.Read(new byte[16]));
        return bytes;
    }

    private static void AssertNoFiles(string target)
    {
        Assert.False(File.Exists(target), $"'{target}' was left behind");
        Assert.False(File.Exists(target + "-wal"), $"'{target}-wal' was left behind");
        Assert.False(File.Exists(target + "-shm"), $"'{target}-shm' was left behind");
    }

    /// <summary>The salts (offsets 16-23) of a WAL file's header, read behind SQLite's back (no locks live on the -wal).</summary>
    private static ulong WalSalts(string dbPath)
    {
        using var wal = new FileStream(dbPath + "-wal", FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var header = new byte[32];
        wal.ReadExactly(header);
        return BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(16));
    }

    /// <summary>A source with rows in both the database file and the WAL: commits, a checkpoint, more commits.</summary>
    private static List<Op[]> FillAtRest(SqliteConnection conn, int commits, int seed)
    {
        var rng = new Random(seed);
        var log = new List<Op[]>();
        for (int n = 1; n <= commits; n++)
        {
            var ops = RandomOps(rng, 400, 8, 3000);
            log.Add(ops);
            Commit(conn, n, ops);
            if (n == commits / 2) Exec(conn, "PRAGMA wal_checkpoint(PASSIVE)");
        }
        return log;
    }

    [Theory]
    [InlineData(false, null)]
    [InlineData(true, null)]
    [InlineData(false, 1)]
    public void An_image_at_rest_holds_the_same_rows(bool sourceClosed, int? piece)
    {
        // sourceClosed: SQLite checkpointed and deleted the WAL when its last connection closed, so the image is the
        // database file alone. piece 1: both sides handle the stream a byte at a time (a smaller source).
        using var dir = new TempFolder();
        string source = dir.File("shard.db"), target = dir.File("staging.db");
        var conn = OpenSource(source, autoCheckpointPages: 0);
        try
        {
            var log = FillAtRest(conn, piece == 1 ? 12 : 120, seed: 11);
            if (sourceClosed)
            {
                conn.Dispose();
                Assert.False(File.Exists(source + "-wal"));
            }
            var reader = CopyImage(source, target, new Random(5), piece);
            if (sourceClosed) Assert.Equal(0, reader.WalLength);
            else Assert.True(reader.WalLength > 0, "the WAL holds the later commits");
            Assert.False(reader.WalSuperseded);
            Assert.Equal("ok", IntegrityCheck(target));
            var copy = Read(target);
            AssertSameContent(Expected(log, log.Count), copy);
            AssertSameContent(Read(source), copy);
        }
        finally
        {
            conn.Dispose();
        }
    }

    [Fact]
    public void An_image_larger_than_the_writers_writeback_steps_holds_the_same_rows()
    {
        // 10,000 rows of 1.5 KB: the database part spans several of the writer's 4 MiB writeback steps
        // (ShardImageWriter.KickWriteback), and the WAL holds the last commits.
        using var dir = new TempFolder();
        string source = dir.File("shard.db"), target = dir.File("staging.db");
        using var conn = OpenSource(source, autoCheckpointPages: 0);
        var log = new List<Op[]>();
        for (int n = 1; n <= 10; n++)
        {
            var ops = Enumerable.Range((n - 1) * 1000, 1000).Select(key => new Op(key, 1500)).ToArray();
            log.Add(ops);
            Commit(conn, n, ops);
            if (n == 8) Exec(conn, "PRAGMA wal_checkpoint(PASSIVE)");
        }
        var reader = CopyImage(source, target, new Random(7), piece: null);
        Assert.True(reader.DatabaseLength > 3 * (4 << 20), $"a {reader.DatabaseLength}-byte database part");
        Assert.True(reader.WalLength > 0, "the WAL holds the last commits");
        Assert.Equal("ok", IntegrityCheck(target));
        AssertSameContent(Expected(log, log.Count), Read(target));
    }

    [Fact]
    public void Images_taken_while_another_connection_commits_hold_exactly_the_commits_up_to_their_applied_index()
    {
        const int Images = 24;
        const int MaxCommits = 500_000; // bounds the writer; the images end the run long before
        using var dir = new TempFolder();
        string source = dir.File("shard.db");
        OpenSource(source, autoCheckpointPages: 50).Dispose();

        var log = new List<Op[]>();
        long committed = 0;
        bool stop = false;
        Exception? writerError = null;
        var writer = new Thread(() =>
        {
            try
            {
                // A small auto-checkpoint: the writer checkpoints every few commits, and the WAL starts over whenever a
                // checkpoint caught up with no reader in the WAL (between images, or under a reader on read mark 0).
                using var conn = OpenSource(source, autoCheckpointPages: 50);
                var rng = new Random(2024);
                for (long n = 1; n <= MaxCommits && !Volatile.Read(ref stop); n++)
                {
                    var ops = RandomOps(rng, 2000, 6, 3000);
                    // Logged before the commit: an image may hold commit n as soon as it is committed.
                    lock (log) log.Add(ops);
                    Commit(conn, n, ops);
                    Volatile.Write(ref committed, n);
                }
            }
            catch (Exception e)
            {
                writerError = e;
            }
        }) { IsBackground = true, Name = "shard-image-writer" };
        writer.Start();

        var salts = new HashSet<ulong>();
        int overlapped = 0, superseded = 0;
        long walBytes = 0, dbBytes = 0;
        try
        {
            // Bounded: the writer stops by itself after MaxCommits.
            while (Volatile.Read(ref committed) < 300 && writer.IsAlive) Thread.Yield();
            var rng = new Random(99);
            for (int i = 0; i < Images; i++)
            {
                salts.Add(WalSalts(source));
                string target = dir.File($"image-{i}.db");
                long before = Volatile.Read(ref committed);
                var reader = CopyImage(source, target, rng);
                long after = Volatile.Read(ref committed);
                if (after > before) overlapped++;
                if (reader.WalSuperseded) superseded++;
                walBytes += reader.WalLength;
                dbBytes += reader.DatabaseLength;

                Assert.Equal("ok", IntegrityCheck(target));
                var copy = Read(target);
                Assert.True(copy.Index >= before, $"image {i} holds index {copy.Index}, older than {before}, committed before it was opened");
                Op[][] commits;
                lock (log) commits = log.ToArray();
                AssertSameContent(Expected(commits, copy.Index), copy);
                File.Delete(target);
            }
        }
        finally
        {
            Volatile.Write(ref stop, true);
            writer.Join();
        }
        Assert.Null(writerError);
        output.WriteLine($"{Images} images, {overlapped} with commits during the copy, {superseded} with the WAL superseded (read mark 0), " +
                         $"{salts.Count} WAL generations seen, {committed} commits; average image {dbBytes / Images} db + {walBytes / Images} WAL bytes");
        Assert.True(overlapped >= Images / 2, $"only {overlapped} of {Images} copies ran while commits landed");
        Assert.True(salts.Count > 1, "the WAL started over during the run");
    }

    [Fact]
    public void Only_the_live_frames_of_a_restarted_WAL_are_sent()
    {
        using var dir = new TempFolder();
        string source = dir.File("shard.db"), target = dir.File("staging.db");
        using var conn = OpenSource(source, autoCheckpointPages: 0);
        var rng = new Random(3);
        var log = new List<Op[]>();
        // A large WAL (every commit rewrites about 40 rows of 1-2 KB), then a checkpoint that catches up, then a few
        // small commits: the WAL starts over at its beginning and keeps its length.
        for (int n = 1; n <= 150; n++)
        {
            var ops = Enumerable.Range(0, 40).Select(_ => new Op(rng.Next(3000), rng.Next(1000, 2000))).ToArray();
            log.Add(ops);
            Commit(conn, n, ops);
        }
        long bigWal = new FileInfo(source + "-wal").Length;
        ulong oldSalts = WalSalts(source);
        Exec(conn, "PRAGMA wal_checkpoint(PASSIVE)");
        for (int n = 151; n <= 153; n++)
        {
            var ops = new[] { new Op(rng.Next(3000), 100), new Op(rng.Next(3000), -1) };
            log.Add(ops);
            Commit(conn, n, ops);
        }
        Assert.NotEqual(oldSalts, WalSalts(source));
        Assert.Equal(bigWal, new FileInfo(source + "-wal").Length);

        var reader = CopyImage(source, target, rng);
        output.WriteLine($"WAL file {reader.WalFileLength} bytes, WAL part {reader.WalLength} bytes, database {reader.DatabaseLength} bytes");
        Assert.Equal(bigWal, reader.WalFileLength);
        Assert.True(reader.WalLength > 0, "the commits after the restart are sent");
        Assert.True(reader.WalLength * 50 < reader.WalFileLength, $"WAL part {reader.WalLength} of a {reader.WalFileLength}-byte WAL");
        Assert.Equal("ok", IntegrityCheck(target));
        AssertSameContent(Expected(log, log.Count), Read(target));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_WAL_that_starts_over_under_a_reader_on_read_mark_0_is_discarded_not_half_replayed(bool restartMidWal)
    {
        // A reader that begins when the WAL is wholly checkpointed takes read mark 0 and reads the database file alone;
        // that mark does not stop a writer from starting the WAL over. Here the WAL's generation holds commits 2 and 3,
        // both checkpointed; commit 3 rewrites commit 2's rows and also rows only commit 1 wrote (same lengths: the same
        // pages, no splits). restartMidWal: the image has sent commit 2's frames when commit 4 starts the WAL over and
        // overwrites commit 3's, so a receiver that replayed what it got would lay commit 2's pages over a file that holds
        // commit 3's: rows of commit 3 beside applied.idx 2, a mix no commit ever produced, in a file that passes
        // integrity_check.
        using var dir = new TempFolder();
        string source = dir.File("shard.db"), target = dir.File("staging.db");
        using var conn = OpenSource(source, autoCheckpointPages: 0);
        var log = new List<Op[]>
        {
            Enumerable.Range(5000, 100).Select(k => new Op(k, 800)).ToArray(),
            Enumerable.Range(0, 60).Select(k => new Op(k, 1500)).ToArray(),
            Enumerable.Range(0, 60).Select(k => new Op(k, 1700)).Concat(Enumerable.Range(5000, 100).Select(k => new Op(k, 800))).ToArray(),
            Enumerable.Range(1000, 300).Select(k => new Op(k, 1500)).ToArray(),
        };
        Commit(conn, 1, log[0]);
        Exec(conn, "PRAGMA wal_checkpoint(PASSIVE)");
        ulong firstSalts = WalSalts(source);
        Commit(conn, 2, log[1]); // starts the WAL over: this generation begins with commit 2
        Assert.NotEqual(firstSalts, WalSalts(source));
        long commit2End = new FileInfo(source + "-wal").Length;
        Commit(conn, 3, log[2]);
        long walEnd = new FileInfo(source + "-wal").Length;
        Exec(conn, "PRAGMA wal_checkpoint(PASSIVE)");
        ulong oldSalts = WalSalts(source);

        using var reader = ShardImageReader.Open(source);
        Assert.Equal(walEnd, reader.WalLength); // by its header, the whole generation is live
        using (var writer = new ShardImageWriter(target))
        {
            var buffer = new byte[64 * 1024];
            long stopAt = ShardImageReader.HeaderSize + reader.DatabaseLength + commit2End;
            bool restarted = false;
            while (true)
            {
                if (!restarted && (!restartMidWal || reader.Position == stopAt))
                {
                    Commit(conn, 4, log[3]);
                    Assert.NotEqual(oldSalts, WalSalts(source));
                    Assert.True(new FileInfo(source + "-wal").Length > walEnd, "commit 4 overwrote every frame of commits 2 and 3");
                    restarted = true;
                }
                int want = restarted ? buffer.Length : (int)Math.Min(buffer.Length, stopAt - reader.Position);
                int n = reader.Read(buffer.AsSpan(0, want));
                if (n == 0) break;
                writer.Write(buffer.AsSpan(0, n));
            }
            Assert.True(restarted);
            writer.Complete();
        }
        Assert.Equal("ok", IntegrityCheck(target));
        // The database file alone: the state when the reader opened.
        AssertSameContent(Expected(log, 3), Read(target));
        Assert.True(reader.WalSuperseded);
    }

    [Fact]
    public void A_reader_inside_the_WAL_keeps_it_from_starting_over()
    {
        // The usual case: the WAL holds frames not yet checkpointed, the reader takes read mark 1-4, and neither a
        // checkpoint (not past its mark) nor a restart (not while it reads) can disturb the frames it sends.
        using var dir = new TempFolder();
        string source = dir.File("shard.db"), target = dir.File("staging.db");
        using var conn = OpenSource(source, autoCheckpointPages: 0);
        var log = new List<Op[]> { Enumerable.Range(0, 60).Select(k => new Op(k, 1500)).ToArray() };
        Commit(conn, 1, log[0]);
        Exec(conn, "PRAGMA wal_checkpoint(PASSIVE)");
        log.Add(Enumerable.Range(0, 60).Select(k => new Op(k, 1700)).ToArray());
        Commit(conn, 2, log[1]);
        ulong salts = WalSalts(source);

        using var reader = ShardImageReader.Open(source);
        using (var writer = new ShardImageWriter(target))
        {
            var buffer = new byte[64 * 1024];
            int n = reader.Read(buffer);
            writer.Write(buffer.AsSpan(0, n));
            // Checkpoint everything it can (all of the WAL up to the reader's mark) and commit more: appended, not restarted.
            Exec(conn, "PRAGMA wal_checkpoint(PASSIVE)");
            log.Add(Enumerable.Range(0, 60).Select(k => new Op(k, 900)).ToArray());
            Commit(conn, 3, log[2]);
            Assert.Equal(salts, WalSalts(source));
            while ((n = reader.Read(buffer)) > 0) writer.Write(buffer.AsSpan(0, n));
            writer.Complete();
        }
        Assert.False(reader.WalSuperseded);
        Assert.Equal("ok", IntegrityCheck(target));
        AssertSameContent(Expected(log, 2), Read(target));
    }

    /// <summary>A source with a database part and a WAL part, its writer closed only after the image was read.</summary>
    private static byte[] SampleImage(TempFolder dir, out long dbLength, out long walLength)
    {
        string source = dir.File("shard.db");
        using var conn = OpenSource(source, autoCheckpointPages: 0);
        FillAtRest(conn, 40, seed: 17);
        var bytes = ImageBytes(source);
        dbLength = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(8));
        walLength = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(16));
        Assert.True(dbLength > 0 && walLength > 0);
        return bytes;
    }

    /// <summary>Feeds <paramref name="bytes"/> in random pieces, then completes: the exception thrown, if any.</summary>
    private static Exception? Feed(string target, ReadOnlySpan<byte> bytes, Random rng)
    {
        using var writer = new ShardImageWriter(target);
        try
        {
            while (!bytes.IsEmpty)
            {
                int n = Math.Min(bytes.Length, rng.Next(1, 50_000));
                writer.Write(bytes[..n]);
                bytes = bytes[n..];
            }
            writer.Complete();
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }

    [Fact]
    public void A_damaged_byte_anywhere_in_the_stream_is_refused_and_leaves_no_files()
    {
        using var dir = new TempFolder();
        var image = SampleImage(dir, out long db, out long wal);
        var rng = new Random(8);
        long dbStart = ShardImageReader.HeaderSize, walStart = dbStart + db, trailer = walStart + wal;
        Assert.Null(Feed(dir.File("control.db"), image, rng)); // the stream itself is fine
        Assert.Equal("ok", IntegrityCheck(dir.File("control.db")));

        var positions = new long[]
        {
            0, 5, 9, 17, 25, // magic, version, lengths, header CRC
            dbStart, dbStart + 100, dbStart + db / 2, walStart - 1, // database part: its header, its middle, its last byte
            walStart, walStart + 17, walStart + 40, walStart + wal / 2, trailer - 1, // WAL header (salt), frames
            trailer, trailer + 6, // flags, CRC
        };
        for (int i = 0; i < positions.Length; i++)
        {
            var damaged = (byte[])image.Clone();
            damaged[positions[i]] ^= (byte)(1 << rng.Next(8));
            string target = dir.File($"damaged-{i}.db");
            var e = Feed(target, damaged, rng);
            Assert.True(e is StorageCorruptException, $"byte {positions[i]} flipped: {e?.GetType().Name ?? "accepted"}");
            AssertNoFiles(target);
        }
    }

    [Fact]
    public void A_source_damaged_on_disk_passes_the_CRC_but_is_refused_by_quick_check()
    {
        // The CRC covers the transport only: a page the source's disk tore travels intact, and SQLite's check on the
        // receiver is what refuses it. quick_check sees a page's structure only (SQLite pages carry no checksum): bytes
        // of a value, or of an overflow page's data, that changed go through; the damage here hits a page's header.
        using var dir = new TempFolder();
        string source = dir.File("shard.db"), target = dir.File("staging.db");
        using (var conn = OpenSource(source, autoCheckpointPages: 0))
            FillAtRest(conn, 40, seed: 21);
        Assert.False(File.Exists(source + "-wal"));
        using (var file = new FileStream(source, FileMode.Open, FileAccess.ReadWrite))
        {
            Assert.True(file.Length > 20 * 4096);
            file.Position = 10 * 4096; // a page of the kv tree (or an overflow page's link), not page 1 (which every open reads)
            file.Write(Enumerable.Repeat((byte)0xA5, 200).ToArray());
        }
        var e = Feed(target, ImageBytes(source), new Random(4));
        Assert.IsType<StorageCorruptException>(e);
        AssertNoFiles(target);
    }

    [Fact]
    public void A_truncated_or_overlong_stream_is_refused_and_leaves_no_files()
    {
        using var dir = new TempFolder();
        var image = SampleImage(dir, out long db, out _);
        var rng = new Random(9);
        var cuts = new long[] { 0, 10, ShardImageReader.HeaderSize, ShardImageReader.HeaderSize + db / 2, image.Length - ShardImageReader.TrailerSize - 1, image.Length - 4, image.Length - 1 };
        for (int i = 0; i < cuts.Length; i++)
        {
            string target = dir.File($"cut-{i}.db");
            var e = Feed(target, image.AsSpan(0, (int)cuts[i]), rng);
            Assert.True(e is StorageCorruptException, $"cut at {cuts[i]}: {e?.GetType().Name ?? "accepted"}");
            AssertNoFiles(target);
        }

        string overlong = dir.File("overlong.db");
        var extra = Feed(overlong, image.Concat(new byte[] { 0 }).ToArray(), rng);
        Assert.IsType<StorageCorruptException>(extra);
        AssertNoFiles(overlong);
    }

    [Fact]
    public void A_writer_disposed_before_Complete_leaves_no_files_and_an_existing_target_is_refused()
    {
        using var dir = new TempFolder();
        var image = SampleImage(dir, out _, out _);
        string target = dir.File("staging.db");
        using (var writer = new ShardImageWriter(target))
            writer.Write(image.AsSpan(0, image.Length / 2));
        AssertNoFiles(target);

        File.WriteAllText(target, "someone's file");
        Assert.ThrowsAny<IOException>(() => new ShardImageWriter(target));
        Assert.Equal("someone's file", File.ReadAllText(target));
    }

    [Fact]
    public void A_database_not_in_WAL_mode_is_refused()
    {
        using var dir = new TempFolder();
        string source = dir.File("rollback.db");
        TempFolder.Exec(source, "PRAGMA journal_mode=DELETE; CREATE TABLE t(x);");
        Assert.Throws<InvalidOperationException>(() => ShardImageReader.Open(source));
    }

    /// <summary>
    /// Not a check: the rate of image + write of a ~40 MB file against File.Copy, printed. Runs only with
    /// REPLICATION_SHARD_IMAGE_MEASURE=1 (dotnet test --logger "console;verbosity=detailed" shows the output).
    /// </summary>
    [Fact]
    public void Measure_image_rate_against_a_file_copy()
    {
        if (Environment.GetEnvironmentVariable("REPLICATION_SHARD_IMAGE_MEASURE") != "1")
        {
            output.WriteLine("Set REPLICATION_SHARD_IMAGE_MEASURE=1 to measure.");
            return;
        }
        using var dir = new TempFolder();
        string source = dir.File("shard.db");
        using (var conn = OpenSource(source, autoCheckpointPages: 0, pageSize: 8192))
        {
            var rng = new Random(1);
            for (int batch = 0; batch < 40; batch++)
                Commit(conn, batch + 1, Enumerable.Range(batch * 1000, 1000).Select(k => new Op(k, rng.Next(600, 1200))).ToArray());
            Exec(conn, "PRAGMA wal_checkpoint(TRUNCATE)");
        }
        long size = new FileInfo(source).Length;
        output.WriteLine($"source: {size / 1e6:F1} MB");
        var buffer = new byte[ShardImageReader.BufferSize];
        for (int round = 0; round < 3; round++)
        {
            string copy = dir.File($"copy-{round}.db"), image = dir.File($"image-{round}.db");
            var sw = Stopwatch.StartNew();
            File.Copy(source, copy);
            double copyS = sw.Elapsed.TotalSeconds;
            using (var f = new FileStream(copy, FileMode.Open, FileAccess.ReadWrite)) f.Flush(flushToDisk: true);
            double copySyncS = sw.Elapsed.TotalSeconds;

            sw.Restart();
            double streamS;
            using (var reader = ShardImageReader.Open(source))
            using (var writer = new ShardImageWriter(image))
            {
                int n;
                while ((n = reader.Read(buffer)) > 0) writer.Write(buffer.AsSpan(0, n));
                streamS = sw.Elapsed.TotalSeconds;
                writer.Complete();
            }
            double imageS = sw.Elapsed.TotalSeconds;
            output.WriteLine($"round {round}: File.Copy {size / copyS / 1e6:F0} MB/s ({copyS * 1000:F0} ms; with fsync {size / copySyncS / 1e6:F0} MB/s, {copySyncS * 1000:F0} ms); " +
                             $"image+write {size / imageS / 1e6:F0} MB/s ({imageS * 1000:F0} ms: stream {streamS * 1000:F0} ms, Complete {(imageS - streamS) * 1000:F0} ms)");
            File.Delete(copy);
            File.Delete(image);
        }
    }
}
