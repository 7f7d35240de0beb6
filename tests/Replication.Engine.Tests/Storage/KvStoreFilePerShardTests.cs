using Replication.Engine.Raft;
using Replication.Engine.Ring;
using Replication.Engine.Storage;
using Xunit;

namespace Replication.Engine.Tests.Storage;

/// <summary>What the layout of a file per shard adds to the state machine's contracts (KvStore.cs): a file per shard, created
/// by its first write and deleted whole; splits that found the new shard's file before the old shard drops its half; batches
/// of a transaction per file. The contracts common to both layouts run on it in KvStoreSplitTestsFilePerShard and
/// KvStoreApplyBatchTestsFilePerShard.</summary>
public sealed class KvStoreFilePerShardTests : IDisposable
{
    private readonly TempFolder _dir = new();
    private KvStore _kv;

    public KvStoreFilePerShardTests() => _kv = Open();

    private string Folder => _dir.File("shards");

    private KvStore Open() => new(Folder, StoreLayout.FilePerShard);

    public void Dispose()
    {
        _kv.Dispose();
        _dir.Dispose();
    }

    private static readonly ShardRangeMap Halves = ShardRangeMap.Even(1).Split(0, 1);
    private static readonly ShardCommand Split01 = new(1, Halves.RangeOf(0).Start, Halves.RangeOf(0).Last, Halves.RangeOf(1).Start, Halves.RangeOf(1).Last);
    private static LogEntry SplitEntry(long index, ShardCommand c) => new(index, 1, EntryType.Normal, c.Encode());
    private static LogEntry Put(long index, string key, string value) => KvStoreApplyTests.Entry(index, 1, KvStoreApplyTests.Put(key, value));
    private string FileOf(int shard) => Path.Combine(Folder, $"shard-{shard}.db");

    [Fact]
    public void Each_shard_lives_in_its_own_file_created_by_its_first_write_and_found_again_after_a_reopen()
    {
        Assert.Equal(0, _kv.AppliedIndex(3)); // a read creates nothing
        Assert.Null(_kv.Get(3, "k"));
        Assert.Empty(_kv.Scan(3, ""));
        Assert.Equal(0, _kv.Count(3));
        Assert.False(File.Exists(FileOf(3)));

        _kv.Apply(3, [Put(1, "a", "3a")]);
        _kv.Apply(1_000_000, [Put(1, "a", "meta")]); // the metadata group too
        Assert.True(File.Exists(FileOf(3)));
        Assert.True(File.Exists(FileOf(1_000_000)));
        Assert.Equal(new[] { 3, 1_000_000 }.Order(), _kv.ShardsWithFiles.Order());

        _kv.Dispose();
        _kv = Open();
        Assert.Equal("3a", _kv.Get(3, "a")!.Value);
        Assert.Equal("meta", _kv.Get(1_000_000, "a")!.Value);
        Assert.Equal(1, _kv.AppliedIndex(3));
        Assert.True(_kv.SizeBytes() > 0);
    }

    [Fact]
    public void Every_shard_file_is_checkpointed_in_the_background_by_one_thread_for_the_whole_store()
    {
        Assert.Equal(0, _kv.CheckpointThreadsStarted); // an idle store: no thread
        int[] shards = [0, 1, 2, 3, 4, 5, 6, 7];
        string value = new('v', 256);
        int perEntry = 250, entries = WalCheckpointer.PassRows * 2 / perEntry;
        for (int e = 1; e <= entries; e++)
            foreach (int shard in shards)
                _kv.Apply(shard, [KvStoreApplyTests.Entry(e, 1, Enumerable.Range(0, perEntry).Select(i => new KvOp(KvOpType.Put, $"k{(i * 7919 + e * 104729) % 1_000_003:D7}-{e}", value, null)).ToArray())]);
        foreach (int shard in shards)
            Assert.True(_kv.WaitForCheckpointPassOf(shard, TimeSpan.FromSeconds(30)), $"shard {shard}'s file had no background checkpoint pass");
        Assert.Equal(1, _kv.CheckpointThreadsStarted);
        _kv.Dispose(); // waits for any pass under way, then stops the thread
        _kv = Open();
        foreach (int shard in shards)
        {
            Assert.Equal((long)entries * perEntry, _kv.Count(shard));
            Assert.Equal(entries, _kv.AppliedIndex(shard));
        }
    }

    [Fact]
    public void A_dropped_shard_is_its_file_deleted_and_a_later_write_starts_it_afresh()
    {
        _kv.Apply(2, [Put(1, "a", "v"), Put(2, "b", "v")]);
        _kv.Apply(5, [Put(1, "c", "v")]);
        _kv.BeginDropShard(2);
        Assert.True(_kv.DropShardRows(2, 1)); // nothing left to do: the file went at once
        Assert.False(File.Exists(FileOf(2)));
        Assert.False(File.Exists(FileOf(2) + "-wal"));
        Assert.Null(_kv.Get(2, "a"));
        Assert.Equal(0, _kv.AppliedIndex(2));
        Assert.Equal("v", _kv.Get(5, "c")!.Value); // the other shard untouched

        _kv.Apply(2, [Put(1, "z", "new")]);
        Assert.Equal(1, _kv.Count(2));
        _kv.DropShard(2);
        Assert.False(File.Exists(FileOf(2)));

        // The dropped files were renamed away at once and are deleted off the caller's thread; the store's close waits for that.
        _kv.Dispose();
        Assert.Equal(new[] { "shard-5.db" }, Directory.EnumerateFiles(Folder).Select(Path.GetFileName).Where(f => !f!.EndsWith("-wal") && !f.EndsWith("-shm")));
        _kv = Open();
        Assert.Equal(new[] { 5 }, _kv.ShardsWithFiles);
        Assert.Equal(0, _kv.AppliedIndex(2));
    }

    [Fact]
    public void A_drop_with_commits_still_in_the_WAL_leaves_nothing_a_new_file_of_the_shard_could_pick_up()
    {
        // Commits that live only in the WAL when the file is dropped (closed without a checkpoint): the WAL is renamed away
        // with the file, so the shard's next file never recovers those frames as its own.
        _kv.Apply(2, Enumerable.Range(1, 50).Select(i => Put(i, $"k{i}", new string('x', 1000))).ToList());
        Assert.True(new FileInfo(FileOf(2) + "-wal").Length > 0);
        _kv.DropShard(2);
        Assert.False(File.Exists(FileOf(2) + "-wal"));
        _kv.Apply(2, [Put(1, "fresh", "v")]);
        _kv.Dispose();
        _kv = Open();
        Assert.Equal(1, _kv.Count(2));
        Assert.Equal(1, _kv.AppliedIndex(2));
        Assert.Equal("v", _kv.Get(2, "fresh")!.Value);
    }

    [Fact]
    public void A_scan_that_outlives_its_shards_file_leaves_the_next_file_of_the_shard_its_WAL()
    {
        // The scan's reader is the last connection of the dropped (renamed) file when it closes. SQLite's last connection
        // of a WAL database checkpoints and then deletes the -wal and -shm BY NAME, which by then are the shard's next
        // file's, whose commit lives only in its WAL; SQLite skips that work for a database file that moved or was unlinked
        // while open (pager.c, databaseIsUnmoved). This holds the store to it, and to never reading the old file again.
        _kv.Apply(2, Enumerable.Range(1, 20).Select(i => Put(i, $"old{i:D2}", "v")).ToList());
        using (var scan = _kv.Scan(2, "").GetEnumerator())
        {
            Assert.True(scan.MoveNext());
            _kv.DropShard(2);
            _kv.Apply(2, [Put(1, "new", "v")]);
            Assert.True(new FileInfo(FileOf(2) + "-wal").Length > 0, "the new file's commit is in its WAL");
            while (scan.MoveNext()) { } // the old file's rows, read to the end
        }
        Assert.True(File.Exists(FileOf(2) + "-wal"), "the scan's close deleted the new file's WAL");
        Assert.True(File.Exists(FileOf(2) + "-shm"), "the scan's close deleted the new file's -shm");
        Assert.Equal("v", _kv.Get(2, "new")!.Value);
        Assert.Equal(1, _kv.Count(2));
        // No reader of the old file is handed out again (the pool the scan's connection went back to was cleared).
        for (int i = 0; i < 4; i++) Assert.Equal(new[] { "new" }, _kv.Scan(2, "").Select(r => r.Key));
    }

    [Fact]
    public void Dropped_files_a_crash_left_before_their_deletion_are_deleted_at_the_next_open()
    {
        _kv.Apply(0, [Put(1, "a", "v")]);
        _kv.Dispose();
        File.WriteAllText(Path.Combine(Folder, "shard-3.db.dropped-0123abcd"), "a dropped file");
        File.WriteAllText(Path.Combine(Folder, "shard-3.db-wal.dropped-0123abcd"), "its WAL");
        _kv = Open();
        Assert.Empty(Directory.EnumerateFiles(Folder, "*.dropped-*"));
        Assert.Equal(new[] { 0 }, _kv.ShardsWithFiles);
        Assert.Equal("v", _kv.Get(0, "a")!.Value);
    }

    [Fact]
    public void A_split_founds_the_new_shard_in_a_file_of_its_own_with_the_right_half_and_the_old_file_keeps_the_left()
    {
        var keys = Enumerable.Range(0, 300).Select(i => $"k{i}").ToArray();
        _kv.Apply(0, keys.Select((k, i) => Put(i + 1, k, "v" + i)).ToArray());
        var before = keys.ToDictionary(k => k, k => _kv.Get(0, k)!);

        // the split in the middle of a call, with entries on both sides of it
        string left = keys.First(k => Halves.ShardFor(k) == 0), right = keys.First(k => Halves.ShardFor(k) == 1);
        var results = _kv.Apply(0, [Put(301, left, "before-split"), SplitEntry(302, Split01), Put(303, right, "refused"), Put(304, left, "after-split")]);
        Assert.Equal(4, results.Count);
        Assert.Equal(KvOpResult.NotOwned, results[2].Results[0]);
        Assert.True(File.Exists(FileOf(1)));
        Assert.Equal(ShardCommand.SplitFoundingIndex, _kv.AppliedIndex(1));
        Assert.Equal((Split01.RightStart, Split01.RightLast), _kv.RangeOf(1));
        Assert.Equal((Split01.LeftStart, Split01.LeftLast), _kv.RangeOf(0));
        foreach (var k in keys.Where(k => k != left))
        {
            int owner = Halves.ShardFor(k);
            Assert.Equal(before[k], _kv.Get(owner, k));
            Assert.Null(_kv.Get(1 - owner, k));
        }
        Assert.Equal("after-split", _kv.Get(0, left)!.Value);
        Assert.Equal(keys.Count(k => Halves.ShardFor(k) == 1), _kv.Count(1));
        Assert.Equal(keys.Count(k => Halves.ShardFor(k) == 0), _kv.Count(0));

        // each file holds its own shard only
        using (var conn = TempFolder.Raw(FileOf(0)))
        using (var cmd = conn.CreateCommand())
        {
            cmd.CommandText = "SELECT count(*) FROM kv WHERE shard <> 0";
            Assert.Equal(0L, (long)cmd.ExecuteScalar()!);
        }
        Assert.Equal(304, _kv.AppliedIndex(0));
    }

    [Fact]
    public void A_split_replayed_after_a_crash_that_left_the_new_file_founds_nothing_twice()
    {
        // As after a crash between the founding (durable) and the old shard's commit of the split, which the crash lost:
        // the new shard's file exists and has moved on; the old shard replays the split from its log.
        string right = Enumerable.Range(0, 1000).Select(i => $"k{i}").First(k => Halves.ShardFor(k) == 1);
        _kv.Apply(0, [Put(1, right, "old")]);
        _kv.Dispose();
        File.Copy(FileOf(0), _dir.File("shard-0-before-split.db"));
        _kv = Open();
        _kv.Apply(0, [SplitEntry(2, Split01)]);
        _kv.Apply(1, [Put(ShardCommand.SplitFoundingIndex + 1, right, "moved-on")]);
        _kv.Dispose();
        File.Copy(_dir.File("shard-0-before-split.db"), FileOf(0), overwrite: true);
        _kv = Open();
        Assert.Equal(1, _kv.AppliedIndex(0));
        Assert.Equal("old", _kv.Get(0, right)!.Value);
        _kv.Apply(0, [SplitEntry(2, Split01)]);
        Assert.Equal("moved-on", _kv.Get(1, right)!.Value);
        Assert.Null(_kv.Get(0, right));
        Assert.Equal(ShardCommand.SplitFoundingIndex + 1, _kv.AppliedIndex(1));
    }

    [Fact]
    public void A_founding_a_crash_cut_off_leaves_no_file_of_the_new_shard_after_a_reopen()
    {
        _kv.Apply(0, [Put(1, "a", "v")]);
        _kv.Dispose();
        File.WriteAllText(Path.Combine(Folder, "shard-1.db.founding"), "half written");
        File.WriteAllText(Path.Combine(Folder, "shard-1.db.founding-wal"), "half written");
        _kv = Open();
        Assert.Empty(Directory.EnumerateFiles(Folder, "*.founding*"));
        Assert.Equal(new[] { 0 }, _kv.ShardsWithFiles);
        // the split then founds shard 1 as if nothing had been there
        _kv.Apply(0, [SplitEntry(2, Split01)]);
        Assert.Equal(ShardCommand.SplitFoundingIndex, _kv.AppliedIndex(1));
    }

    [Fact]
    public void A_split_this_node_founds_no_replica_of_leaves_no_file_of_the_new_shard()
    {
        _kv.Apply(0, [Put(1, "a", "v")]);
        _kv.ForgoSplitFounding(1);
        _kv.Apply(0, [SplitEntry(2, Split01)]);
        Assert.False(File.Exists(FileOf(1)));
        Assert.Equal((Split01.LeftStart, Split01.LeftLast), _kv.RangeOf(0));
    }

    [Fact]
    public void A_split_that_founds_a_shard_is_refused_inside_a_batch_and_the_batch_stores_nothing()
    {
        _kv.Apply(0, [Put(1, "a", "v")]);
        _kv.BeginApplyBatch();
        _kv.Apply(4, [Put(1, "b", "v")]);
        Assert.Throws<InvalidOperationException>(() => _kv.Apply(0, [SplitEntry(2, Split01)]));
        _kv.RollbackApplyBatch();
        Assert.Equal(1, _kv.AppliedIndex(0));
        Assert.Null(_kv.RangeOf(0));
        Assert.Equal(0, _kv.AppliedIndex(4));
        Assert.False(File.Exists(FileOf(1)));
    }

    [Fact]
    public void A_batch_commits_a_transaction_per_file_and_reports_no_partial_commit_when_all_commit()
    {
        _kv.BeginApplyBatch();
        _kv.Apply(1, [Put(1, "a", "1")]);
        _kv.Apply(2, [Put(1, "a", "2")]);
        Assert.Equal(0, _kv.AppliedIndex(1)); // nothing visible before the commit
        _kv.CommitApplyBatch();
        Assert.Equal("1", _kv.Get(1, "a")!.Value);
        Assert.Equal("2", _kv.Get(2, "a")!.Value);
        Assert.Empty(_kv.CommittedOfFailedBatch);
    }

    [Fact]
    public void A_cold_copy_merges_the_shard_files_into_one_state_db_that_imports_back()
    {
        _kv.Apply(0, [Put(1, "a", "0a"), Put(2, "b", "0b")]);
        _kv.Apply(0, [SplitEntry(3, Split01)]);
        _kv.Apply(7, [Put(1, "x", "7x")]);
        _kv.Dispose();
        using var backup = new TempFolder();
        string merged = backup.File("state.db");
        ShardFile.CopyStateMachine(_dir.Path, merged);
        _kv = Open();

        using var restored = new KvStore(merged);
        foreach (int shard in new[] { 0, 1, 7 })
        {
            Assert.Equal(_kv.AppliedIndex(shard), restored.AppliedIndex(shard));
            Assert.Equal(_kv.RangeOf(shard), restored.RangeOf(shard));
            Assert.Equal(_kv.Scan(shard, "").ToList(), restored.Scan(shard, "").ToList());
        }
        Assert.Equal(3, _kv.Scan(0, "").Count() + _kv.Scan(1, "").Count() + _kv.Scan(7, "").Count());

        // and a node of either layout imports a shard from it
        using var other = new TempFolder();
        using var importer = new KvStore(other.File("shards"), StoreLayout.FilePerShard);
        Assert.Equal(_kv.AppliedIndex(7), importer.ImportShard(7, merged));
        Assert.Equal("7x", importer.Get(7, "x")!.Value);
    }

    /// <summary>The chunks a sender's snapshot of <paramref name="shard"/> streams, written as a receiver writes them
    /// (NodeHost.Snapshots.cs, IncomingSnapshot): the first chunk's format byte says image, the rest is the image's stream.</summary>
    private static string ReceiveImage(KvStore sender, int shard, string path, int chunkBytes = 4096)
    {
        using var snapshot = sender.OpenSnapshot(shard);
        Assert.True(snapshot.IsImage);
        using var writer = new ShardImageWriter(path);
        bool first = true;
        foreach (var chunk in snapshot.ChunkBuffers(chunkBytes))
            using (chunk)
            {
                var bytes = chunk.Memory.Span;
                if (first) Assert.Equal(SnapshotChunkCodec.ImageFormatVersion, bytes[0]);
                writer.Write(first ? bytes[1..] : bytes);
                first = false;
            }
        writer.Complete();
        return path;
    }

    [Fact]
    public void A_snapshot_is_an_image_of_the_shards_file_that_takes_the_place_of_the_receivers_own_with_its_range()
    {
        var keys = Enumerable.Range(0, 400).Select(i => $"k{i}").ToArray();
        _kv.Apply(0, keys.Select((k, i) => Put(i + 1, k, new string('v', 100) + i)).ToArray());
        _kv.Apply(0, [SplitEntry(401, Split01), Put(402, keys.First(k => Halves.ShardFor(k) == 0), "last")]);

        // The receiver holds an older state of shard 0 of its own, with a WAL, and another shard.
        using var other = new TempFolder();
        using var receiver = new KvStore(Path.Combine(other.Path, "shards"), StoreLayout.FilePerShard);
        receiver.Apply(0, [Put(1, "stale", "x"), Put(2, "k1", "old")]);
        receiver.Apply(9, [Put(1, "nine", "9")]);

        string image = ReceiveImage(_kv, 0, Path.Combine(other.Path, "shard-0.image"));
        Assert.Throws<StorageCorruptException>(() => receiver.InstallImage(0, image, 401, 1)); // not the index it holds
        Assert.Equal("old", receiver.Get(0, "k1")!.Value); // refused: nothing changed
        receiver.InstallImage(0, image, 402, 1);

        Assert.False(File.Exists(image));
        Assert.Equal(_kv.Scan(0, "").ToList(), receiver.Scan(0, "").ToList());
        Assert.Null(receiver.Get(0, "stale"));
        Assert.Equal(402, receiver.AppliedIndex(0));
        Assert.Equal(_kv.RangeOf(0), receiver.RangeOf(0));
        Assert.False(receiver.Owns(0, keys.First(k => Halves.ShardFor(k) == 1)));
        Assert.Equal("9", receiver.Get(9, "nine")!.Value);
        Assert.Equal(_kv.Count(0), receiver.Count(0));
        // it goes on from there as the shard's file, and after a reopen
        receiver.Apply(0, [Put(403, "after", "a")]);
        Assert.Equal("a", receiver.Get(0, "after")!.Value);
    }

    [Fact]
    public void An_image_taken_while_the_file_has_uncheckpointed_commits_holds_them_all()
    {
        _kv.Apply(5, [Put(1, "a", "1")]);
        for (int i = 2; i <= 60; i++) _kv.Apply(5, [Put(i, $"k{i}", new string('x', 500))]); // commits in the WAL
        using var other = new TempFolder();
        using var receiver = new KvStore(Path.Combine(other.Path, "shards"), StoreLayout.FilePerShard);
        receiver.InstallImage(5, ReceiveImage(_kv, 5, Path.Combine(other.Path, "i"), chunkBytes: 777), 60, 1);
        Assert.Equal(_kv.Scan(5, "").ToList(), receiver.Scan(5, "").ToList());
    }

    [Fact]
    public void A_node_of_one_file_imports_an_image_into_its_state_db()
    {
        _kv.Apply(2, [Put(1, "a", "1"), Put(2, "b", "2")]);
        using var other = new TempFolder();
        using var receiver = new KvStore(other.File("state.db"));
        receiver.Apply(2, [Put(1, "old", "x")]);
        receiver.InstallImage(2, ReceiveImage(_kv, 2, other.File("image")), 2, 1);
        Assert.Equal(_kv.Scan(2, "").ToList(), receiver.Scan(2, "").ToList());
        Assert.Equal(2, receiver.AppliedIndex(2));
    }
}
