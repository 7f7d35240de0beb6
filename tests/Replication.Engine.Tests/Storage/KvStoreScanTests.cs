using System.Text;
using Replication.Engine.Storage;
using Xunit;
using static Replication.Engine.Tests.Storage.KvStoreApplyTests;

namespace Replication.Engine.Tests.Storage;

public sealed class KvStoreScanTests : IDisposable
{
    private readonly TempFolder _dir = new();
    private readonly KvStore _kv;

    // Chosen to sit on every boundary the prefix bound has to get right: the surrogate range,
    // U+FFFF vs supplementary characters, U+10FFFF (cannot be incremented), and prefixes of each other.
    private static readonly string[] Keys =
    [
        "a", "ab", "abc", "ab\uFFFF", "b", "a\uD7FF", "a\uE000", "a\uFFFF", "a\uFFFFz", "a\U00010000", "a\U0001F600",
        "\uFFFF", "\uFFFF\uFFFF", "\U00010000", "\U0010FFFF", "\U0010FFFFx", "\U0010FFFF\U0010FFFF", "\uE000", "\uD7FF", "zz", "\u0001",
    ];

    public KvStoreScanTests()
    {
        _kv = new KvStore(_dir.File("state.db"));
        _kv.Apply(1, Keys.Select((k, i) => Entry(i + 1, 1, Put(k, "v" + i))).ToList());
        _kv.Apply(2, [Entry(1, 1, Put("a-other-shard", "x"))]);
    }

    public void Dispose()
    {
        _kv.Dispose();
        _dir.Dispose();
    }

    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    [Theory]
    [InlineData("")]
    [InlineData("a")]
    [InlineData("ab")]
    [InlineData("a\uFFFF")]
    [InlineData("\uFFFF")]
    [InlineData("\U0010FFFF")]
    [InlineData("a\uD7FF")]
    [InlineData("\U00010000")]
    [InlineData("ab\uFFFF")]
    [InlineData("nothing")]
    public void ScanReturnsExactlyThePrefixInByteOrder(string prefix)
    {
        var expected = Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal))
            .OrderBy(Utf8, Comparer<byte[]>.Create((x, y) => x.AsSpan().SequenceCompareTo(y)))
            .ToList();
        var actual = _kv.Scan(1, prefix).Select(k => k.Key).ToList();
        Assert.Equal(expected, actual);
    }

    [Theory]
    [InlineData("")]
    [InlineData("a")]
    [InlineData("\U0010FFFF")]
    public void PagingWithScanAfterVisitsEveryKeyOnceInOrder(string prefix)
    {
        var all = _kv.Scan(1, prefix).Select(k => k.Key).ToList();
        var paged = new List<string>();
        string? after = null;
        for (int page = 0; page <= all.Count; page++) // bounded: at least one key per page, or done
        {
            var keys = _kv.ScanAfter(1, prefix, after).Take(2).Select(k => k.Key).ToList();
            if (keys.Count == 0) break;
            paged.AddRange(keys);
            after = keys[^1];
        }
        Assert.Equal(all, paged);
    }

    [Fact]
    public void ScanCarriesValuesAndMetadata()
    {
        var item = Assert.Single(_kv.Scan(2, ""));
        Assert.Equal(new StoredKey("a-other-shard", "x", 1, 1), item);
        Assert.Empty(_kv.Scan(3, ""));
    }

    [Fact]
    public void ScanIsAStreamedSnapshot()
    {
        using var e = _kv.Scan(1, "").GetEnumerator();
        Assert.True(e.MoveNext());
        // A write committed mid-scan is not seen: the scan reads from one WAL snapshot.
        _kv.Apply(1, [Entry(Keys.Length + 1, 1, Put("zzz-late", "v"))]);
        int n = 1;
        while (e.MoveNext())
        {
            Assert.NotEqual("zzz-late", e.Current.Key);
            n++;
        }
        Assert.Equal(Keys.Length, n);
        Assert.Contains(_kv.Scan(1, "zzz"), k => k.Key == "zzz-late");
    }

    [Fact]
    public void InvalidPrefixIsRejectedEagerly()
    {
        var ex = Assert.Throws<InvalidKeyException>(() => _kv.Scan(1, "a\uD800"));
        Assert.Equal(InvalidKeyException.InvalidPrefix, ex.ErrorId);
    }

    [Theory]
    [InlineData("a", "b")]
    [InlineData("abc", "abd")]
    [InlineData("a\uFFFF", "a\U00010000")]
    [InlineData("\uD7FF", "\uE000")]
    [InlineData("x\U0001F600", "x\U0001F601")]
    [InlineData("a\U0010FFFF", "b")]
    [InlineData("ab\U0010FFFF\U0010FFFF", "ac")]
    public void PrefixUpperBound(string prefix, string upper) => Assert.Equal(upper, ShardDb.PrefixUpperBound(prefix));

    [Theory]
    [InlineData("")]
    [InlineData("\U0010FFFF")]
    [InlineData("\U0010FFFF\U0010FFFF")]
    public void PrefixWithoutUpperBound(string prefix) => Assert.Null(ShardDb.PrefixUpperBound(prefix));

    [Theory]
    [InlineData(ShardDb.ScanAllSql, "(shard=?)")]
    [InlineData(ShardDb.ScanFromSql, "(shard=? AND key>?)")]
    [InlineData(ShardDb.ScanRangeSql, "(shard=? AND key>? AND key<?)")]
    [InlineData(ShardDb.ScanAfterSql, "(shard=? AND key>? AND key<?)")]
    [InlineData(ShardDb.ScanAfterOpenSql, "(shard=? AND key>?)")]
    public void ScanIsAnIndexRangeSearch(string sql, string constraint)
    {
        using var conn = TempFolder.Raw(_dir.File("state.db"));
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "EXPLAIN QUERY PLAN " + sql;
        cmd.Parameters.AddWithValue("@shard", 1);
        cmd.Parameters.AddWithValue("@lo", "a");
        cmd.Parameters.AddWithValue("@hi", "b");
        var details = new List<string>();
        using (var r = cmd.ExecuteReader())
            while (r.Read()) details.Add(r.GetString(3));
        // One step: a SEARCH of the primary key's B-tree, no full SCAN and no sort (ORDER BY key is the index order).
        string plan = Assert.Single(details);
        Assert.Equal("SEARCH kv USING PRIMARY KEY " + constraint, plan);
    }

    [Fact]
    public void CompareKeysIsUtf8ByteOrder()
    {
        Assert.True(KvStore.CompareKeys("\uE000", "\U00010000") < 0);
        Assert.True(string.CompareOrdinal("\uE000", "\U00010000") > 0); // the case UTF-16 order gets wrong
        Assert.True(KvStore.CompareKeys("\uFFFF", "\uD800\uDC00") < 0);
        Assert.True(KvStore.CompareKeys("\uD7FF", "\uE000") < 0);
        Assert.True(KvStore.CompareKeys("a", "ab") < 0);
        Assert.Equal(0, KvStore.CompareKeys("a😀", "a😀"));
        Assert.True(KvStore.CompareKeys("\U0001F600", "\U0001F601") < 0);
    }

    [Fact]
    public void CompareKeysAgreesWithSqlite()
    {
        string[] alphabet = ["a", "b", "é", "\u07FF", "\u0800", "\uD7FF", "\uE000", "\uFFFD", "\uFFFF", "\U00010000", "\U0001F600", "\U0010FFFF"];
        var rng = new Random(7);
        var keys = new HashSet<string>(StringComparer.Ordinal);
        while (keys.Count < 2000)
            keys.Add(string.Concat(Enumerable.Range(0, rng.Next(1, 5)).Select(_ => alphabet[rng.Next(alphabet.Length)])));

        using var conn = TempFolder.Raw(_dir.File("order.db"));
        using (var tx = conn.BeginTransaction())
        {
            using var create = conn.CreateCommand();
            create.CommandText = "CREATE TABLE t(key TEXT PRIMARY KEY) WITHOUT ROWID";
            create.ExecuteNonQuery();
            using var insert = conn.CreateCommand();
            insert.CommandText = "INSERT INTO t(key) VALUES(@k)";
            var p = insert.Parameters.Add("@k", Microsoft.Data.Sqlite.SqliteType.Text);
            foreach (var k in keys)
            {
                p.Value = k;
                insert.ExecuteNonQuery();
            }
            tx.Commit();
        }
        var sqliteOrder = new List<string>();
        using (var cmd = conn.CreateCommand())
        {
            cmd.CommandText = "SELECT key FROM t ORDER BY key";
            using var r = cmd.ExecuteReader();
            while (r.Read()) sqliteOrder.Add(r.GetString(0));
        }
        var ours = keys.ToList();
        ours.Sort(KvStore.CompareKeys);
        Assert.Equal(sqliteOrder, ours);
        Assert.NotEqual(sqliteOrder, keys.Order(StringComparer.Ordinal).ToList()); // the test does exercise the difference
    }
}
