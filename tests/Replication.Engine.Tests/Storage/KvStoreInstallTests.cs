using Replication.Engine.Storage;
using Xunit;

namespace Replication.Engine.Tests.Storage;

/// <summary>
/// A snapshot stored in batches (KvStore.InstallSnapshotRows, NodeHost.Snapshots.cs): the rows become the shard's, with its
/// applied index, only at CompleteSnapshotInstall; an install a crash interrupted is discarded when the store is next opened
/// for a node (DiscardPartialInstalls), and leaves the shard as empty as it was.
/// </summary>
public sealed class KvStoreInstallTests
{
    private static StoredKey Row(int i) => new($"k{i:D4}", new string('v', 100), 1, 7);

    /// <summary>One batch of a batched install: the rows as one chunk.</summary>
    private static byte[] Chunk(IEnumerable<StoredKey> rows) => SnapshotChunkCodec.Encode(rows, int.MaxValue).Single();

    [Fact]
    public void A_batched_install_counts_only_once_complete_and_an_interrupted_one_is_discarded()
    {
        using var dir = new TempFolder();
        string path = dir.File("state.db");
        using (var kv = new KvStore(path))
        {
            kv.InstallSnapshotRows(0, 500, 3, Chunk(Enumerable.Range(0, 10).Select(Row).ToArray()), first: true);
            kv.InstallSnapshotRows(0, 500, 3, Chunk(Enumerable.Range(10, 10).Select(Row).ToArray()), first: false);
            kv.CompleteSnapshotInstall(0, 500, 3, null);
            Assert.Equal(500, kv.AppliedIndex(0));
            Assert.Equal(20, kv.Scan(0, "").Count());
            Assert.Empty(kv.DiscardPartialInstalls());

            // Shard 1: two batches in, then the node "crashes" (the store is closed without completing).
            kv.InstallSnapshotRows(1, 900, 4, Chunk(Enumerable.Range(0, 10).Select(Row).ToArray()), first: true);
            kv.InstallSnapshotRows(1, 900, 4, Chunk(Enumerable.Range(10, 5).Select(Row).ToArray()), first: false);
            Assert.Equal(0, kv.AppliedIndex(1));
            Assert.Equal(15, kv.Scan(1, "").Count());
        }
        using (var kv = new KvStore(path))
        {
            Assert.Equal(new[] { (1, false) }, kv.DiscardPartialInstalls());
            Assert.Empty(kv.Scan(1, ""));
            Assert.Equal(0, kv.AppliedIndex(1));
            Assert.Equal(20, kv.Scan(0, "").Count()); // the completed install is untouched
            Assert.Equal(500, kv.AppliedIndex(0));
            Assert.Empty(kv.DiscardPartialInstalls());
            // Completing an install that is not in progress is a bug in the caller, not a silent no-op.
            Assert.Throws<InvalidOperationException>(() => kv.CompleteSnapshotInstall(1, 900, 4, null));
        }
    }

    [Fact]
    public void A_drop_in_steps_deletes_only_its_shard_and_one_a_crash_interrupted_is_completed_at_the_next_start()
    {
        using var dir = new TempFolder();
        string path = dir.File("state.db");
        using (var kv = new KvStore(path))
        {
            kv.InstallSnapshotRows(0, 500, 3, Chunk(Enumerable.Range(0, 20).Select(Row).ToArray()), first: true);
            kv.CompleteSnapshotInstall(0, 500, 3, null);
            kv.InstallSnapshotRows(1, 900, 4, Chunk(Enumerable.Range(0, 1000).Select(Row).ToArray()), first: true);
            kv.CompleteSnapshotInstall(1, 900, 4, null);

            kv.BeginDropShard(1);
            Assert.Equal(0, kv.AppliedIndex(1)); // no longer a replica's state from the first step on
            Assert.Equal(1000, kv.Scan(1, "").Count());
            int steps = 1;
            while (!kv.DropShardRows(1, 256)) steps++;
            Assert.Equal(4, steps); // 256 + 256 + 256 + 232
            Assert.Empty(kv.Scan(1, ""));
            Assert.Empty(kv.DiscardPartialInstalls()); // the marker went with the last rows
            Assert.Equal(20, kv.Scan(0, "").Count());
            Assert.Equal(500, kv.AppliedIndex(0));

            // Shard 0: one step in, then the node "crashes".
            kv.BeginDropShard(0);
            Assert.False(kv.DropShardRows(0, 5));
            Assert.Equal(15, kv.Scan(0, "").Count());
        }
        using (var kv = new KvStore(path))
        {
            Assert.Equal(new[] { (0, true) }, kv.DiscardPartialInstalls());
            Assert.Empty(kv.Scan(0, ""));
            Assert.Equal(0, kv.AppliedIndex(0));
            Assert.Empty(kv.DiscardPartialInstalls());
        }
    }

    [Fact]
    public void While_checkpoints_are_paused_a_thread_of_their_own_takes_them_and_the_writer_resumes_its_own_after()
    {
        using var dir = new TempFolder();
        string path = dir.File("state.db");
        var value = new string('v', 1000);
        using (var kv = new KvStore(path))
        {
            long pages = kv.WriterAutoCheckpointPages;
            Assert.True(pages > 0);
            Assert.Equal(0, kv.RequestCheckpoint()); // not paused: nothing to wait for
            Assert.True(kv.CheckpointDone(0, TimeSpan.Zero));

            kv.PauseAutoCheckpoint();
            kv.PauseAutoCheckpoint(); // idempotent
            Assert.Equal(0, kv.WriterAutoCheckpointPages);
            // About 12 MB of rows in batches: past the writer's own threshold (1,000 pages of 8 KiB) had it been on.
            for (int b = 0; b < 12; b++)
            {
                var rows = Enumerable.Range(b * 1000, 1000).Select(i => new StoredKey($"k{i:D6}", value, 1, 7)).ToArray();
                kv.InstallSnapshotRows(0, 500, 3, Chunk(rows), first: b == 0);
                kv.NudgeCheckpoint();
            }
            long ticket = kv.RequestCheckpoint();
            Assert.True(ticket > 0);
            var bound = System.Diagnostics.Stopwatch.StartNew();
            while (!kv.CheckpointDone(ticket, TimeSpan.FromMilliseconds(100)))
                Assert.True(bound.Elapsed < TimeSpan.FromSeconds(60), "the checkpoint asked for never ended");
            // The rows' pages are in state.db itself, copied there by the checkpointing thread (the writer's are off).
            Assert.True(new FileInfo(path).Length > 10_000_000, $"state.db holds {new FileInfo(path).Length} bytes");
            kv.CompleteSnapshotInstall(0, 500, 3, null);
            kv.ResumeAutoCheckpoint();
            kv.ResumeAutoCheckpoint(); // idempotent
            Assert.Equal(pages, kv.WriterAutoCheckpointPages);
            Assert.Equal(0, kv.RequestCheckpoint());
        }
        using (var kv = new KvStore(path))
        {
            Assert.Empty(kv.DiscardPartialInstalls());
            Assert.Equal(500, kv.AppliedIndex(0));
            Assert.Equal(12_000, kv.Scan(0, "").Count());
        }
    }

    [Fact]
    public void A_store_disposed_while_checkpoints_are_paused_stops_their_thread()
    {
        using var dir = new TempFolder();
        string path = dir.File("state.db");
        using (var kv = new KvStore(path))
        {
            kv.PauseAutoCheckpoint();
            kv.InstallSnapshotRows(0, 500, 3, Chunk(Enumerable.Range(0, 10).Select(Row).ToArray()), first: true);
            kv.CompleteSnapshotInstall(0, 500, 3, null);
        } // disposed paused: Dispose waits for the checkpointing thread to end
        using (var kv = new KvStore(path))
        {
            Assert.True(kv.WriterAutoCheckpointPages > 0); // a pragma of the connection, not of the file
            Assert.Equal(10, kv.Scan(0, "").Count());
        }
    }

    [Fact]
    public void A_first_batch_replaces_what_an_earlier_attempt_left_and_a_drop_removes_the_marker()
    {
        using var dir = new TempFolder();
        using var kv = new KvStore(dir.File("state.db"));
        kv.InstallSnapshotRows(2, 900, 4, Chunk(Enumerable.Range(0, 10).Select(Row).ToArray()), first: true);
        // A new attempt (the earlier one abandoned: a full disk) starts over.
        kv.InstallSnapshotRows(2, 950, 5, Chunk(Enumerable.Range(100, 3).Select(Row).ToArray()), first: true);
        kv.CompleteSnapshotInstall(2, 950, 5, null);
        Assert.Equal(new[] { "k0100", "k0101", "k0102" }, kv.Scan(2, "").Select(k => k.Key));
        kv.InstallSnapshotRows(3, 10, 1, Chunk(new[] { Row(1) }), first: true);
        kv.DropShard(3);
        Assert.Empty(kv.DiscardPartialInstalls());
    }

    /// <summary>The rows of a snapshot taken after <see cref="Row"/>'s: k0000-k0009 deleted, k0010-k0014 unchanged,
    /// k0015-k0019 rewritten, k0020-k0029 added.</summary>
    private static StoredKey[] NewerRows() =>
        Enumerable.Range(10, 5).Select(Row)
            .Concat(Enumerable.Range(15, 15).Select(i => new StoredKey($"k{i:D4}", new string('w', 50), 2, 150)))
            .ToArray();

    private static string[] Keys(KvStore kv, int shard) => kv.Scan(shard, "").Select(k => $"{k.Key}={k.Value}@{k.Version}/{k.ModifiedIndex}").ToArray();

    [Fact]
    public void A_staged_install_leaves_the_old_rows_before_its_commit_point_and_completes_after_it_whatever_the_crash()
    {
        using var dir = new TempFolder();
        string path = dir.File("state.db");
        string[] oldRows, newRows;
        var newer = NewerRows();
        using (var kv = new KvStore(path))
        {
            // The replica's own state, and what the snapshot must leave (built on a store of its own).
            kv.InstallSnapshotRows(0, 100, 3, Chunk(Enumerable.Range(0, 20).Select(Row).ToArray()), first: true);
            kv.CompleteSnapshotInstall(0, 100, 3, null);
            oldRows = Keys(kv, 0);
            kv.InstallSnapshotRows(9, 200, 4, Chunk(newer), first: true);
            kv.CompleteSnapshotInstall(9, 200, 4, null);
            newRows = Keys(kv, 9);

            // Staged in two chunks, then the node "crashes" before the commit point: the shard's own rows are untouched.
            kv.StageSnapshotRows(0, 200, 4, Chunk(newer[..8]), first: true);
            kv.StageSnapshotRows(0, 200, 4, Chunk(newer[8..]), first: false);
            Assert.Equal(oldRows, Keys(kv, 0));
            Assert.Equal(100, kv.AppliedIndex(0));
        }
        using (var kv = new KvStore(path))
        {
            Assert.Equal("0 | ", Lists(kv.FinishStagedInstalls()));
            Assert.Equal(oldRows, Keys(kv, 0));
            Assert.Equal(100, kv.AppliedIndex(0));

            // Staged again, past the commit point, and one step of four keys swapped (the old k0000-k0009 go with it); then a crash.
            kv.StageSnapshotRows(0, 200, 4, Chunk(newer), first: true);
            kv.BeginStagedSwap(0, 200, 4, (5, 9));
            Assert.False(kv.SwapStagedRows(0, 4));
            Assert.Equal(100, kv.AppliedIndex(0));
        }
        using (var kv = new KvStore(path))
        {
            // Rolled forward from where the step ended: exactly the snapshot's rows, its index and its range.
            Assert.Equal(" | 0", Lists(kv.FinishStagedInstalls()));
            Assert.Equal(newRows, Keys(kv, 0));
            Assert.Equal(200, kv.AppliedIndex(0));
            Assert.Equal((5UL, 9UL), kv.RangeOf(0));
            Assert.Equal(newer.Length, kv.Count(0));
            Assert.Equal(" | ", Lists(kv.FinishStagedInstalls()));
        }
    }

    [Fact]
    public void A_staged_install_swapped_in_steps_ends_with_the_snapshots_rows_and_index()
    {
        using var dir = new TempFolder();
        using var kv = new KvStore(dir.File("state.db"));
        kv.InstallSnapshotRows(0, 100, 3, Chunk(Enumerable.Range(0, 20).Select(Row).Append(new StoredKey("z-last", "old", 1, 9)).ToArray()), first: true);
        kv.CompleteSnapshotInstall(0, 100, 3, null);
        var newer = NewerRows();
        kv.StageSnapshotRows(0, 200, 4, Chunk(newer), first: true);
        // Committing a swap that is not staged, or stepping one not committed, is a bug in the caller.
        Assert.Throws<InvalidOperationException>(() => kv.BeginStagedSwap(0, 201, 4, null));
        Assert.Throws<InvalidOperationException>(() => kv.SwapStagedRows(0, 3));
        kv.BeginStagedSwap(0, 200, 4, null);
        int steps = 1;
        while (!kv.SwapStagedRows(0, 3)) steps++;
        Assert.Equal(newer.Length / 3 + 1, steps);
        Assert.Equal(newer.Select(r => $"{r.Key}={r.Value}@{r.Version}/{r.ModifiedIndex}").ToArray(), Keys(kv, 0)); // "z-last", past the last staged key, is gone too
        Assert.Equal(200, kv.AppliedIndex(0));
        Assert.Null(kv.RangeOf(0));
        Assert.Equal(" | ", Lists(kv.FinishStagedInstalls()));
    }

    /// <summary>FinishStagedInstalls' answer as "dropped shards | completed shards".</summary>
    private static string Lists((IReadOnlyList<int> Dropped, IReadOnlyList<int> Completed) r) => $"{string.Join(",", r.Dropped)} | {string.Join(",", r.Completed)}";

    [Fact]
    public void A_version_3_file_is_migrated_at_open()
    {
        using var dir = new TempFolder();
        string path = dir.File("state.db");
        new KvStore(path).Dispose();
        TempFolder.Exec(path, "DROP TABLE snapshot_install; DROP TABLE kv_staged; DROP TABLE snapshot_stage; PRAGMA user_version = 3");
        using (var kv = new KvStore(path))
        {
            Assert.Empty(kv.DiscardPartialInstalls());
            Assert.Equal(ShardDb.SchemaVersion.ToString(System.Globalization.CultureInfo.InvariantCulture), kv.WriterPragma("user_version"));
        }
    }

    [Fact]
    public void A_snapshot_carries_the_shards_range_and_both_install_paths_record_it_with_the_rows()
    {
        // The sender: shard 0 split at index 5 (shard 1 takes the right half), then a snapshot of shard 0 in small chunks.
        using var dir = new TempFolder();
        var split = new ShardCommand(1, 0, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, ulong.MaxValue);
        byte[][] chunks;
        using (var sender = new KvStore(dir.File("sender.db")))
        {
            long index = 0;
            foreach (int i in Enumerable.Range(0, 4))
                sender.Apply(0, [new Replication.Engine.Raft.LogEntry(++index, 1, Replication.Engine.Raft.EntryType.Normal,
                    KvCommand.Encode(Enumerable.Range(i * 10, 10).Select(k => new KvOp(KvOpType.Put, $"k{k}", "v", null)).ToArray()))]);
            sender.Apply(0, [new Replication.Engine.Raft.LogEntry(++index, 1, Replication.Engine.Raft.EntryType.Normal, split.Encode())]);
            using var reader = sender.OpenSnapshot(0);
            Assert.Equal((split.LeftStart, split.LeftLast), reader.Range);
            chunks = SnapshotChunkCodec.Encode(reader.Rows(), 100, reader.Range).ToArray();
        }
        Assert.True(chunks.Length > 1);
        Assert.Equal((split.LeftStart, split.LeftLast), SnapshotChunkCodec.RangeOf(chunks[0]));
        Assert.All(chunks.Skip(1), c => Assert.Null(SnapshotChunkCodec.RangeOf(c)));
        var rows = chunks.SelectMany(c => SnapshotChunkCodec.Decode(c)).ToArray();
        Assert.All(rows, r => Assert.InRange(Replication.Engine.Ring.KeyHash.Of(r.Key), split.LeftStart, split.LeftLast));

        // A receiver that never applied the split: one transaction (shard 0), and in batches (shard 2, a fresh replica).
        string path = dir.File("receiver.db");
        using (var kv = new KvStore(path))
        {
            Assert.Null(kv.RangeOf(0));
            kv.InstallSnapshot(0, 5, 1, SnapshotChunkCodec.RangeOf(chunks[0]), chunks);
            Assert.Equal((split.LeftStart, split.LeftLast), kv.RangeOf(0));
            kv.InstallSnapshotRows(2, 5, 1, Chunk(rows), first: true);
            Assert.Null(kv.RangeOf(2)); // recorded with the applied index, when the install completes
            kv.CompleteSnapshotInstall(2, 5, 1, (split.RightStart, split.RightLast));
            Assert.Equal((split.RightStart, split.RightLast), kv.RangeOf(2));
            // A snapshot without a range (never split, or from a node that sent none) keeps the range recorded.
            kv.InstallSnapshot(0, 9, 1, null, SnapshotChunkCodec.Encode(rows, 100));
            Assert.Equal((split.LeftStart, split.LeftLast), kv.RangeOf(0));
            Assert.False(kv.Owns(0, KeyIn(split.RightStart, split.RightLast)));
        }
        using (var kv = new KvStore(path)) // durable with the rows
        {
            Assert.Equal((split.LeftStart, split.LeftLast), kv.RangeOf(0));
            Assert.Equal((split.RightStart, split.RightLast), kv.RangeOf(2));
        }
    }

    [Fact]
    public void A_chunk_with_a_malformed_range_is_refused()
    {
        var chunk = SnapshotChunkCodec.Encode([Row(1)], 1000, (5, 9)).Single();
        Assert.Equal(SnapshotChunkCodec.RangeFormatVersion, chunk[0]);
        Assert.Equal(new[] { Row(1) }, SnapshotChunkCodec.Decode(chunk));
        chunk.AsSpan(1, 8).Fill(0xFF); // start past last
        Assert.Throws<StorageCorruptException>(() => SnapshotChunkCodec.RangeOf(chunk));
        Assert.Throws<StorageCorruptException>(() => SnapshotChunkCodec.Decode(chunk));
        Assert.Throws<StorageCorruptException>(() => SnapshotChunkCodec.Decode(chunk.AsSpan(0, 12)));
        Assert.Null(SnapshotChunkCodec.RangeOf(SnapshotChunkCodec.Encode([Row(1)], 1000).Single()));
    }

    private static string KeyIn(ulong start, ulong last) =>
        Enumerable.Range(0, 10_000).Select(i => $"r{i}").First(k => Replication.Engine.Ring.KeyHash.Of(k) is var h && h >= start && h <= last);
}
