using Replication.Engine.Raft;
using Replication.Engine.Storage;
using Xunit;

namespace Replication.Engine.Tests.Storage;

public sealed class KvStoreApplyTests : IDisposable
{
    private readonly TempFolder _dir = new();
    private readonly KvStore _kv;
    private string DbPath => _dir.File("state.db");

    public KvStoreApplyTests() => _kv = new KvStore(DbPath);

    public void Dispose()
    {
        _kv.Dispose();
        _dir.Dispose();
    }

    internal static KvOp Put(string key, string value, long? expected = null) => new(KvOpType.Put, key, value, expected);
    internal static KvOp Del(string key, long? expected = null) => new(KvOpType.Delete, key, null, expected);
    internal static LogEntry Entry(long index, long term, params KvOp[] ops) =>
        new(index, term, EntryType.Normal, ops.Length == 0 ? [] : KvCommand.Encode(ops));

    private KvOpResult One(long index, KvOp op) => Assert.Single(Assert.Single(_kv.Apply(1, [Entry(index, 1, op)])).Results);

    [Fact]
    public void PutCreatesAtVersionOneAndIncrements()
    {
        Assert.Equal(new KvOpResult(true, 1, false, 0), One(1, Put("a", "x")));
        Assert.Equal(new KvOpResult(true, 2, true, 1), One(2, Put("a", "y")));
        Assert.Equal(new StoredKey("a", "y", 2, 2), _kv.Get(1, "a"));
        Assert.Null(_kv.Get(1, "b"));
    }

    [Fact]
    public void ConditionalPut()
    {
        Assert.Equal(new KvOpResult(true, 1, false, 0), One(1, Put("a", "1", expected: 0)));   // must not exist: ok
        Assert.Equal(new KvOpResult(false, 0, true, 1), One(2, Put("a", "2", expected: 0)));  // exists: rejected
        Assert.Equal(new KvOpResult(false, 0, true, 1), One(3, Put("a", "3", expected: 5)));  // wrong version
        Assert.Equal(new KvOpResult(true, 2, true, 1), One(4, Put("a", "4", expected: 1)));   // right version
        Assert.Equal(new KvOpResult(false, 0, false, 0), One(5, Put("b", "1", expected: 1))); // absent, expected 1
        // Rejections left no trace: value, version and modified index are those of entry 4.
        Assert.Equal(new StoredKey("a", "4", 2, 4), _kv.Get(1, "a"));
        Assert.Null(_kv.Get(1, "b"));
        Assert.Equal(5, _kv.AppliedIndex(1));
    }

    [Fact]
    public void DeleteSemantics()
    {
        One(1, Put("a", "1"));
        Assert.Equal(new KvOpResult(false, 0, true, 1), One(2, Del("a", expected: 2)));
        Assert.Equal(new KvOpResult(false, 0, true, 1), One(3, Del("a", expected: 0)));  // 0 = must be absent
        Assert.NotNull(_kv.Get(1, "a"));
        Assert.Equal(new KvOpResult(true, 0, true, 1), One(4, Del("a", expected: 1)));
        Assert.Null(_kv.Get(1, "a"));
        Assert.Equal(new KvOpResult(true, 0, false, 0), One(5, Del("a")));              // absent, unconditional: ok
        Assert.Equal(new KvOpResult(true, 0, false, 0), One(6, Del("a", expected: 0))); // absent, expected absent: ok
        Assert.Equal(new KvOpResult(false, 0, false, 0), One(7, Del("a", expected: 1)));
        Assert.Equal(new KvOpResult(true, 1, false, 0), One(8, Put("a", "again")));    // re-created: version restarts
    }

    [Fact]
    public void OpsOfOneEntryAreIndependentAndOrdered()
    {
        var r = Assert.Single(_kv.Apply(1, [Entry(1, 1, Put("a", "1"), Put("b", "1", expected: 5), Put("c", "1"), Put("a", "2", expected: 1), Del("c"))]));
        Assert.Equal(1, r.Index);
        Assert.Equal(
            [new(true, 1, false, 0), new(false, 0, false, 0), new(true, 1, false, 0), new(true, 2, true, 1), new(true, 0, true, 1)],
            r.Results);
        Assert.Equal(new StoredKey("a", "2", 2, 1), _kv.Get(1, "a"));
        Assert.Null(_kv.Get(1, "b"));
        Assert.Null(_kv.Get(1, "c"));
    }

    [Fact]
    public void NoOpAndConfChangeEntriesAdvanceAppliedIndex()
    {
        var results = _kv.Apply(1, [Entry(1, 3), new LogEntry(2, 3, EntryType.ConfChange, [1, 2, 3]), Entry(3, 4)]);
        Assert.Equal([1L, 2L, 3L], results.Select(r => r.Index));
        Assert.All(results, r => Assert.Empty(r.Results));
        Assert.Equal(3, _kv.AppliedIndex(1));
        Assert.Equal(4, _kv.AppliedTerm(1));
        Assert.Equal(0, _kv.Count(1));
    }

    [Fact]
    public void ReplayedEntriesAreSkipped()
    {
        _kv.Apply(1, [Entry(1, 1, Put("a", "1")), Entry(2, 1, Put("a", "2")), Entry(3, 1)]);
        var results = _kv.Apply(1, [Entry(1, 1, Put("a", "1")), Entry(2, 1, Put("a", "2")), Entry(3, 1), Entry(4, 2, Put("a", "4")), Entry(5, 2)]);
        Assert.Equal([4L, 5L], results.Select(r => r.Index));
        Assert.Equal(new StoredKey("a", "4", 3, 4), _kv.Get(1, "a")); // 3 puts, not 5
        Assert.Empty(_kv.Apply(1, [Entry(5, 2), Entry(2, 1, Put("a", "x"))]));
        Assert.Equal(5, _kv.AppliedIndex(1));
    }

    [Fact]
    public void GapAfterAppliedIndexIsRefusedAndAppliesNothing()
    {
        _kv.Apply(1, [Entry(1, 1)]);
        Assert.Throws<ArgumentException>(() => _kv.Apply(1, [Entry(2, 1, Put("a", "1")), Entry(4, 1, Put("b", "1"))]));
        Assert.Equal(1, _kv.AppliedIndex(1));
        Assert.Null(_kv.Get(1, "a"));
    }

    [Fact]
    public void CorruptEntryFailsTheWholeCallAndNamesTheEntry()
    {
        var bad = new LogEntry(2, 1, EntryType.Normal, [1, 9, 9]);
        var ex = Assert.Throws<StorageCorruptException>(() => _kv.Apply(7, [Entry(1, 1, Put("a", "1")), bad]));
        Assert.Contains("shard 7", ex.Message);
        Assert.Contains("entry 2", ex.Message);
        Assert.Equal(0, _kv.AppliedIndex(7));
        Assert.Null(_kv.Get(7, "a"));
    }

    [Fact]
    public void AppliedIndexAndDataCommitTogether()
    {
        _kv.Apply(1, [Entry(1, 1, Put("a", "1")), Entry(2, 2, Put("b", "2"))]);
        Assert.Throws<StorageCorruptException>(() => _kv.Apply(1, [Entry(3, 2, Put("c", "3")), new LogEntry(4, 2, EntryType.Normal, [0])]));
        _kv.Dispose();

        using var reopened = new KvStore(DbPath);
        Assert.Equal(2, reopened.AppliedIndex(1));
        Assert.Equal(2, reopened.AppliedTerm(1));
        Assert.Equal(new StoredKey("a", "1", 1, 1), reopened.Get(1, "a"));
        Assert.Equal(new StoredKey("b", "2", 1, 2), reopened.Get(1, "b"));
        Assert.Null(reopened.Get(1, "c"));

        // The applied row and the data are in the same file and moved together: check the raw rows too.
        using var raw = TempFolder.Raw(DbPath);
        using var cmd = raw.CreateCommand();
        cmd.CommandText = "SELECT (SELECT idx FROM applied WHERE shard = 1), (SELECT max(modified_index) FROM kv WHERE shard = 1)";
        using var r = cmd.ExecuteReader();
        Assert.True(r.Read());
        Assert.Equal(2, r.GetInt64(0));
        Assert.Equal(2, r.GetInt64(1));
    }

    [Fact]
    public void ShardsAreIndependent()
    {
        _kv.Apply(1, [Entry(1, 1, Put("k", "one"))]);
        _kv.Apply(2, [Entry(1, 1, Put("k", "two")), Entry(2, 1, Put("k", "two'"))]);
        Assert.Equal(new StoredKey("k", "one", 1, 1), _kv.Get(1, "k"));
        Assert.Equal(new StoredKey("k", "two'", 2, 2), _kv.Get(2, "k"));
        Assert.Equal(1, _kv.AppliedIndex(1));
        Assert.Equal(2, _kv.AppliedIndex(2));
        Assert.Equal(0, _kv.AppliedIndex(3));
        Assert.Equal(1, _kv.Count(1));
    }

    [Fact]
    public void UnicodeKeysAndValuesRoundTrip()
    {
        string key = "ключ/😀/\uE000/\uFFFF", value = "值 \U0010FFFF";
        _kv.Apply(1, [Entry(1, 1, Put(key, value))]);
        Assert.Equal(new StoredKey(key, value, 1, 1), _kv.Get(1, key));
    }

    [Fact]
    public async Task ReadsRunConcurrentlyWithApply()
    {
        const int Entries = 300;
        using var done = new CancellationTokenSource();
        var readers = Enumerable.Range(0, 3).Select(_ => Task.Run(() =>
        {
            long lastCount = 0, reads = 0;
            while (!done.IsCancellationRequested || reads == 0)
            {
                long applied = _kv.AppliedIndex(1);
                long count = _kv.Count(1);
                Assert.True(count >= lastCount, "a reader saw the key count go backwards");
                Assert.True(count <= Entries && applied <= Entries);
                lastCount = count;
                reads++;
            }
            return reads;
        })).ToArray();

        for (int i = 1; i <= Entries; i++) _kv.Apply(1, [Entry(i, 1, Put($"k{i:D4}", "v"))]);
        done.Cancel();
        long[] reads = await Task.WhenAll(readers);
        Assert.All(reads, n => Assert.True(n > 0));
        Assert.Equal(Entries, _kv.Count(1));
    }

    /// <summary>The key count is kept by the writer once counted (KvStore.Count): every kind of commit leaves it equal to
    /// a count of the rows, whether the count was known before the commit or not.</summary>
    [Fact]
    public void CountStaysExactThroughEveryKindOfCommit()
    {
        long index = 0;
        void Check(int shard)
        {
            using var fresh = new KvStore(DbPath); // counts the rows itself: nothing known yet
            Assert.Equal(fresh.Count(shard), _kv.Count(shard));
        }
        Assert.Equal(0, _kv.Count(1)); // known from here on
        _kv.Apply(1, [Entry(++index, 1, Put("a", "1"), Put("b", "1"), Put("a", "2"))]);
        Assert.Equal(2, _kv.Count(1));
        _kv.Apply(1, [Entry(++index, 1, Put("c", "1", expected: 5), Del("zz"), Del("b", expected: 7))]); // all change nothing
        Assert.Equal(2, _kv.Count(1));
        _kv.Apply(1, [Entry(++index, 1, Del("a"), Put("d", "1", expected: 0)), Entry(++index, 1, Put("e", "1"), Del("e"), Put("e", "2"))]);
        Assert.Equal(3, _kv.Count(1)); // b, d, e
        Check(1);
        _kv.InstallSnapshot(1, ++index, 1, null, SnapshotChunkCodec.Encode([new StoredKey("x", "1", 1, 1)], 1024));
        Assert.Equal(1, _kv.Count(1));
        _kv.Apply(1, [Entry(++index, 1, Put("y", "1"))]);
        Assert.Equal(2, _kv.Count(1));
        Check(1);
        _kv.DropShard(1);
        Assert.Equal(0, _kv.Count(1));
        _kv.Apply(2, [Entry(1, 1, Put("q", "1"))]); // a shard never counted: counted at its first call
        Assert.Equal(1, _kv.Count(2));
        Check(2);
    }

    [Fact]
    public void GetValidatesKey()
    {
        Assert.Equal(InvalidKeyException.EmptyKey, Assert.Throws<InvalidKeyException>(() => _kv.Get(1, "")).ErrorId);
        Assert.Equal(InvalidKeyException.KeyTooLong, Assert.Throws<InvalidKeyException>(() => _kv.Get(1, new string('a', 1025))).ErrorId);
    }

    [Fact]
    public void WriterUsesWalWithNormalSync()
    {
        Assert.Equal("wal", _kv.WriterPragma("journal_mode"));
        Assert.Equal("1", _kv.WriterPragma("synchronous")); // NORMAL
    }

    [Fact]
    public void SnapshotStreamEncodesTheStoredUtf8AsTheStringRowsWould()
    {
        var rows = new[]
        {
            new StoredKey("a", "", 1, 5), // an empty value: bound as '' by the install, not NULL
            new StoredKey("clé-é", "värde ✓ 𝄞", 3, 7),
            new StoredKey("z", new string('v', 3000), 2, 9), // larger than a chunk: a chunk of its own
        };
        _kv.InstallSnapshot(4, 10, 1, null, SnapshotChunkCodec.Encode(rows, 1024));
        Assert.Equal(rows, _kv.Scan(4, "").ToArray());
        using var reader = _kv.OpenSnapshot(4);
        var fromBytes = reader.Chunks(1024).ToList();
        var fromStrings = SnapshotChunkCodec.Encode(reader.Rows(), 1024).ToList();
        Assert.Equal(2, fromBytes.Count);
        Assert.Equal(fromStrings, fromBytes);
        Assert.Equal(rows, fromBytes.SelectMany(c => SnapshotChunkCodec.Decode(c)).ToArray());
        using var empty = _kv.OpenSnapshot(5);
        Assert.Equal(SnapshotChunkCodec.Encode([], 1024).ToList(), empty.Chunks(1024).ToList()); // one empty chunk
    }

    [Fact]
    public void AChunkThatIsNotUtf8IsRefusedAndInstallsNothing()
    {
        _kv.InstallSnapshot(4, 10, 1, null, SnapshotChunkCodec.Encode([new StoredKey("a", "1", 1, 5)], 1024));
        var bad = SnapshotChunkCodec.Encode([new StoredKey("b", "xy", 1, 5), new StoredKey("c", "2", 1, 5)], 1024).Single();
        bad[5 + 4 + 1 + 4] = 0xFF; // the first byte of "xy"
        Assert.Throws<StorageCorruptException>(() => SnapshotChunkCodec.Decode(bad));
        Assert.Throws<StorageCorruptException>(() => _kv.InstallSnapshot(4, 11, 1, null, [bad]));
        Assert.Throws<StorageCorruptException>(() => _kv.InstallSnapshotRows(6, 11, 1, bad, first: true));
        Assert.Equal(new[] { "a" }, _kv.Scan(4, "").Select(k => k.Key));
        Assert.Equal(10, _kv.AppliedIndex(4));
        Assert.Empty(_kv.Scan(6, ""));
        Assert.Empty(_kv.DiscardPartialInstalls()); // the failed first batch left no marker either
    }

    [Fact]
    public void BigAppliesAreCheckpointedInTheBackgroundAndSurviveAReopen()
    {
        Assert.Equal((-KvStore.WriterCacheKiB).ToString(System.Globalization.CultureInfo.InvariantCulture), _kv.WriterPragma("cache_size"));
        Assert.Equal(WalCheckpointer.WriterAutoCheckpointPages.ToString(System.Globalization.CultureInfo.InvariantCulture), _kv.WriterPragma("wal_autocheckpoint"));
        Assert.Equal(0, _kv.CheckpointPasses); // an idle store: no pass, no thread
        string value = new('v', 256);
        int perEntry = 250, entries = WalCheckpointer.PassRows * 3 / perEntry;
        for (int e = 1; e <= entries; e++)
            _kv.Apply(1, [Entry(e, 1, Enumerable.Range(0, perEntry).Select(i => new KvOp(KvOpType.Put, $"k{(i * 7919 + e * 104729) % 1_000_003:D7}-{e}", value, null)).ToArray())]);
        Assert.True(_kv.WaitForCheckpointPass(TimeSpan.FromSeconds(30)), "no background checkpoint pass ran");
        Assert.True(_kv.CheckpointPasses > 0);
        long count = _kv.Count(1);
        Assert.Equal((long)entries * perEntry, count);
        _kv.Dispose();
        using var reopened = new KvStore(DbPath);
        Assert.Equal(count, reopened.Count(1));
        Assert.Equal(entries, reopened.AppliedIndex(1));
    }

    [Fact]
    public void NewFileUsesPagesLargeEnoughForKilobyteRows()
    {
        Assert.Equal("8192", _kv.WriterPragma("page_size"));
        // A 1,000-byte value stays in its leaf: the file grows by about the rows' bytes, not an overflow page per row.
        var rows = Enumerable.Range(0, 2000).Select(i => new StoredKey($"key-{i:D6}", new string('v', 1000), 1, 1)).ToList();
        _kv.InstallSnapshot(3, 10, 1, null, SnapshotChunkCodec.Encode(rows, 256 * 1024));
        long pages = long.Parse(_kv.WriterPragma("page_count"), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(pages * 8192, 2000 * 1000, 2000 * 1000 * 3 / 2);
    }

    [Fact]
    public void UnknownSchemaVersionAndForeignFilesAreRefused()
    {
        _kv.Dispose();
        TempFolder.Exec(DbPath, $"PRAGMA user_version = {ShardDb.SchemaVersion + 1}");
        Assert.Throws<StorageCorruptException>(() => new KvStore(DbPath));

        string raftPath = _dir.File("raft.db");
        using (new RaftLogStore(raftPath)) { }
        Assert.Throws<StorageCorruptException>(() => new KvStore(raftPath));
    }

    [Fact]
    public void SizeBytesCoversFileAndWal()
    {
        long before = _kv.SizeBytes();
        Assert.True(before > 0);
        _kv.Apply(1, Enumerable.Range(1, 200).Select(i => Entry(i, 1, Put($"key{i}", new string('x', 1000)))).ToList());
        Assert.True(_kv.SizeBytes() >= before + 200_000);
    }
}
