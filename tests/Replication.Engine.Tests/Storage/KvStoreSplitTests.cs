using Replication.Engine.Raft;
using Replication.Engine.Ring;
using Replication.Engine.Storage;
using Xunit;

namespace Replication.Engine.Tests.Storage;

/// <summary>A split applied by the state machine (KvStore.ApplySplit): rows move with their versions, later entries obey the new ranges.</summary>
public class KvStoreSplitTests : IDisposable
{
    private readonly TempFolder _dir = new();
    private KvStore _kv;

    public KvStoreSplitTests() => _kv = OpenStore();

    /// <summary>The layout these tests run on (<see cref="KvStoreSplitTestsFilePerShard"/> runs them all on the other).</summary>
    protected virtual StoreLayout Layout => StoreLayout.FilePerNode;

    private KvStore OpenStore() =>
        Layout == StoreLayout.FilePerNode ? new KvStore(_dir.File("state.db")) : new KvStore(_dir.File("shards"), StoreLayout.FilePerShard);

    public void Dispose()
    {
        GC.SuppressFinalize(this);
        _kv.Dispose();
        _dir.Dispose();
    }

    // Shard 0 of a one-shard map owns every hash; the split gives [0, mid] to shard 0 and (mid, max] to shard 1.
    private static readonly ShardRangeMap Halves = ShardRangeMap.Even(1).Split(0, 1);
    private static readonly ShardCommand Split01 = new(1, Halves.RangeOf(0).Start, Halves.RangeOf(0).Last, Halves.RangeOf(1).Start, Halves.RangeOf(1).Last);
    private static LogEntry SplitEntry(long index, ShardCommand c) => new(index, 1, EntryType.Normal, c.Encode());
    private static string KeyIn(int shard, int n) => Enumerable.Range(0, 10_000).Select(i => $"k{i}").Where(k => Halves.ShardFor(k) == shard).ElementAt(n);

    [Fact]
    public void Rows_of_the_right_half_move_to_the_new_shard_with_their_versions()
    {
        var keys = Enumerable.Range(0, 200).Select(i => $"k{i}").ToArray();
        long index = 0;
        foreach (var k in keys) _kv.Apply(0, [KvStoreApplyTests.Entry(++index, 1, KvStoreApplyTests.Put(k, "v"))]);
        _kv.Apply(0, [KvStoreApplyTests.Entry(++index, 1, KvStoreApplyTests.Put(keys[0], "v2"))]); // version 2
        var before = keys.ToDictionary(k => k, k => _kv.Get(0, k)!);

        _kv.Apply(0, [SplitEntry(++index, Split01)]);

        foreach (var k in keys)
        {
            int owner = Halves.ShardFor(k);
            var row = _kv.Get(owner, k);
            Assert.Equal(before[k], row); // value, version and modified index unchanged
            Assert.Null(_kv.Get(1 - owner, k));
            Assert.True(_kv.Owns(owner, k));
            Assert.False(_kv.Owns(1 - owner, k));
        }
        Assert.Equal((Split01.RightStart, Split01.RightLast), _kv.RangeOf(1));
        Assert.Equal(index, _kv.AppliedIndex(0));
        Assert.Equal(ShardCommand.SplitFoundingIndex, _kv.AppliedIndex(1)); // the new shard starts from its founding snapshot, its own log above it
    }

    [Fact]
    public void Key_counts_known_before_a_split_follow_the_rows()
    {
        var keys = Enumerable.Range(0, 200).Select(i => $"k{i}").ToArray();
        Assert.Equal(0, _kv.Count(0)); // known from here on, kept by each commit
        Assert.Equal(0, _kv.Count(1));
        _kv.Apply(0, keys.Select((k, i) => KvStoreApplyTests.Entry(i + 1, 1, KvStoreApplyTests.Put(k, "v"))).ToArray());
        Assert.Equal(200, _kv.Count(0));
        _kv.Apply(0, [SplitEntry(201, Split01)]);
        Assert.Equal(keys.Count(k => Halves.ShardFor(k) == 0), _kv.Count(0));
        Assert.Equal(keys.Count(k => Halves.ShardFor(k) == 1), _kv.Count(1));
    }

    [Fact]
    public void An_entry_after_the_split_in_the_same_batch_is_refused_for_a_moved_key()
    {
        string right = KeyIn(1, 0), left = KeyIn(0, 0);
        var results = _kv.Apply(0,
        [
            KvStoreApplyTests.Entry(1, 1, KvStoreApplyTests.Put(right, "before")),
            SplitEntry(2, Split01),
            KvStoreApplyTests.Entry(3, 1, KvStoreApplyTests.Put(right, "after"), KvStoreApplyTests.Put(left, "after")),
        ]);
        Assert.Equal(KvOpResult.NotOwned, results[2].Results[0]);
        Assert.True(results[2].Results[1].Applied);
        Assert.Equal("before", _kv.Get(1, right)!.Value); // the refused write left no trace
        Assert.Null(_kv.Get(0, right));
        Assert.Equal("after", _kv.Get(0, left)!.Value);
    }

    [Fact]
    public void A_second_split_of_the_same_range_or_into_a_used_id_changes_nothing()
    {
        string right = KeyIn(1, 0);
        _kv.Apply(0, [KvStoreApplyTests.Entry(1, 1, KvStoreApplyTests.Put(right, "v")), SplitEntry(2, Split01)]);
        // the same split proposed twice (a retried coordinator), and one computed from the range before the first
        var again = Split01 with { NewShard = 2 };
        Assert.False(KvStore.SplitApplies(_kv.SplitRanges, 0, Split01));
        Assert.False(KvStore.SplitApplies(_kv.SplitRanges, 0, again));
        _kv.Apply(0, [SplitEntry(3, Split01), SplitEntry(4, again)]);
        Assert.Null(_kv.RangeOf(2));
        Assert.Equal("v", _kv.Get(1, right)!.Value);
        Assert.Equal(4, _kv.AppliedIndex(0));
        // the left half splits again, into a fresh id
        var left = ShardRangeMap.Even(1).Split(0, 1).Split(0, 2);
        var quarter = new ShardCommand(2, left.RangeOf(0).Start, left.RangeOf(0).Last, left.RangeOf(2).Start, left.RangeOf(2).Last);
        Assert.True(KvStore.SplitApplies(_kv.SplitRanges, 0, quarter));
    }

    [Fact]
    public void Ranges_survive_a_reopen_and_a_replay_of_the_split_keeps_rows_the_new_shard_wrote()
    {
        string right = KeyIn(1, 0), other = KeyIn(1, 1);
        _kv.Apply(0, [KvStoreApplyTests.Entry(1, 1, KvStoreApplyTests.Put(right, "old"), KvStoreApplyTests.Put(other, "x")), SplitEntry(2, Split01)]);
        _kv.Apply(1, [KvStoreApplyTests.Entry(ShardCommand.SplitFoundingIndex + 1, 1, KvStoreApplyTests.Put(right, "new"))]);
        _kv.Dispose();
        _kv = OpenStore();
        Assert.Equal((Split01.LeftStart, Split01.LeftLast), _kv.RangeOf(0));
        Assert.Equal((Split01.RightStart, Split01.RightLast), _kv.RangeOf(1));
        Assert.False(_kv.Owns(0, right));
        Assert.Equal("new", _kv.Get(1, right)!.Value);
        Assert.Equal(2, _kv.Get(1, right)!.Version);
    }

    [Fact]
    public void A_split_replayed_where_the_new_shard_already_has_a_state_splits_the_old_shard_and_leaves_the_new_one_alone()
    {
        // The new shard's replica here came first (by snapshot, past its founding: it deleted `other` since, and rewrote
        // `right`); then this node replays the old shard's log from its start, split entry included.
        string right = KeyIn(1, 0), other = KeyIn(1, 1), left = KeyIn(0, 0);
        _kv.Apply(1, [KvStoreApplyTests.Entry(1, 1, KvStoreApplyTests.Put(right, "new"))]);
        _kv.Apply(0, [KvStoreApplyTests.Entry(1, 1, KvStoreApplyTests.Put(right, "old"), KvStoreApplyTests.Put(other, "x"), KvStoreApplyTests.Put(left, "l")),
            SplitEntry(2, Split01)]);

        // The old shard split as on every other replica: its range, and the right half's rows gone from it.
        Assert.Equal((Split01.LeftStart, Split01.LeftLast), _kv.RangeOf(0));
        Assert.Null(_kv.Get(0, right));
        Assert.Null(_kv.Get(0, other));
        Assert.Equal("l", _kv.Get(0, left)!.Value);
        Assert.False(_kv.Owns(0, right));
        Assert.Equal(1, _kv.Count(0));
        // The new shard kept its own state: no key it deleted comes back, no row of it is older than it was.
        Assert.Null(_kv.Get(1, other));
        Assert.Equal("new", _kv.Get(1, right)!.Value);
        Assert.Equal(1, _kv.AppliedIndex(1));
        Assert.Equal(1, _kv.Count(1));
    }

    [Fact]
    public void A_malformed_shard_command_is_corruption_not_a_silent_skip()
    {
        var bad = Split01.Encode();
        bad[^1] ^= 0xFF; // ranges no longer adjacent
        Assert.Throws<StorageCorruptException>(() => _kv.Apply(0, [new LogEntry(1, 1, EntryType.Normal, bad)]));
        Assert.Equal(0, _kv.AppliedIndex(0));
    }

    [Fact]
    public void Importing_a_shard_from_a_backup_takes_the_backups_range_exactly()
    {
        // The backup: shard 0 split at index 2, so shard 0 owns the left half there.
        using var backupDir = new TempFolder();
        using (var backup = new KvStore(backupDir.File("state.db")))
        {
            backup.Apply(0, [KvStoreApplyTests.Entry(1, 1, KvStoreApplyTests.Put(KeyIn(0, 0), "v"))]);
            backup.Apply(0, [SplitEntry(2, Split01)]);
        }
        Assert.Null(_kv.RangeOf(0));
        Assert.Equal(2, _kv.ImportShard(0, backupDir.File("state.db")));
        Assert.Equal((Split01.LeftStart, Split01.LeftLast), _kv.RangeOf(0)); // before: it owned every key again
        Assert.False(_kv.Owns(0, KeyIn(1, 0)));
        Assert.Equal("v", _kv.Get(0, KeyIn(0, 0))?.Value);

        // A backup from before the split: the shard owned every key there, and a replica that had split since replays the
        // split entry from its log; keeping the narrower range would refuse the entries before it that the others applied.
        using var olderDir = new TempFolder();
        using (var older = new KvStore(olderDir.File("state.db")))
            older.Apply(0, [KvStoreApplyTests.Entry(1, 1, KvStoreApplyTests.Put(KeyIn(0, 0), "v"))]);
        Assert.Equal(1, _kv.ImportShard(0, olderDir.File("state.db")));
        Assert.Null(_kv.RangeOf(0));
        Assert.True(_kv.Owns(0, KeyIn(1, 0)));
    }
}

/// <summary>Every test of <see cref="KvStoreSplitTests"/> on the layout of a file per shard.</summary>
public sealed class KvStoreSplitTestsFilePerShard : KvStoreSplitTests
{
    protected override StoreLayout Layout => StoreLayout.FilePerShard;
}
