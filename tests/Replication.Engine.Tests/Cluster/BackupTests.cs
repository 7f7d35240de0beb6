using Replication.Engine.Cluster;
using Replication.Engine.Tests.Storage;
using Xunit;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// Hot and cold backup, verification and restore, end to end on real embedded clusters. The central
/// check: a restored cluster holds, per shard, exactly the state the acknowledged writes produced up
/// to the index the backup manifest records for that shard.
/// </summary>
public sealed class BackupTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task A_hot_backup_under_writes_restores_to_exactly_the_state_at_the_manifest_indexes()
    {
        await using var f = await ClusterFixture.StartAsync(shards: 3);
        using var backupDir = new TempFolder();
        string backup = Path.Combine(backupDir.Path, "b1");
        var acked = new List<ReplicationKey>();
        await WriteBatchAsync(f, acked, 0, 200);

        // A writer keeps overwriting and adding keys while the backup runs.
        using var stop = new CancellationTokenSource();
        var writer = Task.Run(async () =>
        {
            for (int round = 1; round <= 400 && !stop.IsCancellationRequested; round++)
                await WriteBatchAsync(f, acked, round, 20);
        });
        ClusterFixture.Eventually(() => { lock (acked) return acked.Count >= 400; }, "the writer is running");
        var progress = new List<BackupProgress>();
        var result = await f.Cluster.BackupAsync(backup, new SyncProgress<BackupProgress>(progress.Add), ClusterFixture.Bound, None);
        int ackedAtBackupEnd;
        lock (acked) ackedAtBackupEnd = acked.Count;
        ClusterFixture.Eventually(() => { lock (acked) return acked.Count >= ackedAtBackupEnd + 100 || writer.IsCompleted; }, "writes continued after the backup");
        stop.Cancel();
        await writer;

        Assert.Equal(BackupKind.Hot, result.Kind);
        Assert.Equal(f.Cluster.Id, result.ClusterId);
        Assert.Equal(3, result.Shards.Count);
        Assert.Contains(progress, p => p.Completed == 4 && p.Total == 4 && p.PercentComplete == 100); // every shard, then the manifest
        Assert.True(result.BarrierPause > TimeSpan.Zero && result.BarrierPause < ClusterFixture.Bound);
        Assert.True(result.KeyCount >= 200);
        var verified = Backups.Verify(backup, None);
        Assert.True(verified.Valid);
        Assert.Equal(result.Checksum, verified.Checksum);

        string restorePath = Path.Combine(backupDir.Path, "restored");
        await using var restored = await EmbeddedCluster.RestoreAsync(backup, new ClusterOptions { Name = "restored", Path = restorePath, Seed = 7 }, null, ClusterFixture.Bound, None);
        await restored.WaitForLeadersAsync(null, ClusterFixture.Bound, None);
        Assert.NotEqual(f.Cluster.Id, restored.Id);
        Assert.Equal(3, restored.ShardCount);

        List<ReplicationKey> snapshot;
        lock (acked) snapshot = acked.ToList();
        foreach (var shard in result.Shards)
        {
            // Expected: the last acknowledged write of each key at or below the shard's backup index.
            var expected = snapshot.Where(k => k.Shard == shard.Shard && k.Index <= shard.Index)
                .GroupBy(k => k.Key).Select(g => g.OrderBy(k => k.Index).Last())
                .ToDictionary(k => k.Key, k => (k.Value, k.Version));
            var actual = new Dictionary<string, (string, long)>();
            await foreach (var k in restored.ScanAsync("", ReadConsistency.Linearizable, ClusterFixture.Bound, None))
                if (k.Shard == shard.Shard) actual[k.Key] = (k.Value, k.Version);
            Assert.Equal(expected.Count, actual.Count);
            Assert.Equal(shard.KeyCount, actual.Count);
            foreach (var (key, want) in expected) Assert.Equal(want, actual[key]);
        }
        Assert.True(snapshot.Any(k => k.Index > result.Shards.First(s => s.Shard == k.Shard).Index), "some writes landed after the backup's indexes");

        // The restored cluster takes writes; versions continue from the restored ones.
        var again = (await restored.WriteAsync(new[] { new KeyWrite("k:0", "after-restore") }, WriteConcern.Majority, ClusterFixture.Bound, None))[0];
        Assert.Null(again.Error);
        var before = snapshot.Where(k => k.Key == "k:0" && k.Index <= result.Shards.First(s => s.Shard == k.Shard).Index).Max(k => k.Version);
        Assert.Equal(before + 1, again.Record!.Version);
    }

    [Fact]
    public async Task A_damaged_backup_is_refused_naming_the_file_and_nothing_is_restored()
    {
        await using var f = await ClusterFixture.StartAsync(shards: 2);
        using var dir = new TempFolder();
        var acked = new List<ReplicationKey>();
        await WriteBatchAsync(f, acked, 0, 100);
        string backup = Path.Combine(dir.Path, "b");
        var result = await f.Cluster.BackupAsync(backup, null, ClusterFixture.Bound, None);
        Assert.Equal(100, result.KeyCount);

        // A busy target folder is refused before anything is copied.
        var inUse = await Assert.ThrowsAsync<BackupPathException>(() => f.Cluster.BackupAsync(backup, null, ClusterFixture.Bound, None));
        Assert.Equal("BackupPathInUse", inUse.ErrorId);

        string shardFile = Path.Combine(backup, result.Shards[1].File);
        byte[] original = File.ReadAllBytes(shardFile);

        // One flipped byte in the middle of a shard file.
        var flipped = (byte[])original.Clone();
        flipped[flipped.Length / 2] ^= 0x40;
        File.WriteAllBytes(shardFile, flipped);
        var corrupt = Assert.Throws<BackupCorruptException>(() => Backups.Verify(backup, None));
        Assert.Equal("BackupCorrupt", corrupt.ErrorId);
        Assert.Equal(shardFile, corrupt.File);
        Assert.Contains("SHA-256", corrupt.Message);

        string target = Path.Combine(dir.Path, "restored");
        await Assert.ThrowsAsync<BackupCorruptException>(() => EmbeddedCluster.RestoreAsync(backup, new ClusterOptions { Name = "r", Path = target }, null, ClusterFixture.Bound, None));
        Assert.False(Directory.Exists(target), "nothing may be written for a bad backup");

        // Truncated.
        File.WriteAllBytes(shardFile, original[..(original.Length / 2)]);
        corrupt = Assert.Throws<BackupCorruptException>(() => Backups.Verify(backup, None));
        Assert.Equal(shardFile, corrupt.File);
        Assert.Contains("bytes", corrupt.Message);

        // Restored file, edited manifest (a key count changed).
        File.WriteAllBytes(shardFile, original);
        Assert.True(Backups.Verify(backup, None).Valid);
        string manifest = Path.Combine(backup, "backup.json");
        string text = File.ReadAllText(manifest);
        File.WriteAllText(manifest, text.Replace($"\"KeyCount\": {result.Shards[0].KeyCount}", $"\"KeyCount\": {result.Shards[0].KeyCount + 1}"));
        corrupt = Assert.Throws<BackupCorruptException>(() => Backups.Verify(backup, None));
        Assert.Equal(manifest, corrupt.File);
        Assert.Contains("checksum", corrupt.Message);

        File.Delete(manifest);
        Assert.Equal("BackupNotFound", Assert.Throws<BackupPathException>(() => Backups.Verify(backup, None)).ErrorId);
    }

    [Fact]
    public async Task A_hot_backup_is_a_consistent_cut_a_sequential_writers_keys_restore_as_a_prefix()
    {
        // One writer writes during:0, during:1, ... each acknowledged before the next begins, across every shard,
        // while the backup runs. A consistent cut holds every write acknowledged before any write it holds began:
        // the restored keys are exactly during:0..during:k for some k (no hole), whatever shard each lands on.
        await using var f = await ClusterFixture.StartAsync(shards: 4);
        using var dir = new TempFolder();
        string backup = Path.Combine(dir.Path, "cut");
        using var stop = new CancellationTokenSource();
        int written = 0;
        var writer = Task.Run(async () =>
        {
            for (int i = 0; i < 20_000 && !stop.IsCancellationRequested; i++)
            {
                var r = (await f.Cluster.WriteAsync([new KeyWrite($"during:{i}", "x")], WriteConcern.Majority, ClusterFixture.Bound, None))[0];
                if (r.Error is not null) throw r.Error;
                Volatile.Write(ref written, i + 1);
            }
        });
        ClusterFixture.Eventually(() => Volatile.Read(ref written) >= 50, "the writer is running");
        var result = await f.Cluster.BackupAsync(backup, null, ClusterFixture.Bound, None);
        int after = Volatile.Read(ref written);
        ClusterFixture.Eventually(() => Volatile.Read(ref written) >= after + 20 || writer.IsCompleted, "writes go on after the backup");
        stop.Cancel();
        await writer;
        Assert.True(result.BarrierPause > TimeSpan.Zero && result.BarrierPause < TimeSpan.FromSeconds(2), $"barrier {result.BarrierPause}");

        await using var restored = await EmbeddedCluster.RestoreAsync(backup, new ClusterOptions { Name = "cut", Path = Path.Combine(dir.Path, "restored") }, null, ClusterFixture.Bound, None);
        var present = new HashSet<int>();
        await foreach (var k in restored.ScanAsync("during:", ReadConsistency.Linearizable, ClusterFixture.Bound, None)) present.Add(int.Parse(k.Key["during:".Length..]));
        Assert.True(present.Count > 0, "the backup holds some of the writes");
        int max = present.Max();
        var holes = Enumerable.Range(0, max + 1).Where(i => !present.Contains(i)).ToArray();
        Assert.True(holes.Length == 0, $"the restored keys are during:0..during:{max} with holes at {string.Join(", ", holes.Take(20))}");
    }

    [Fact]
    public async Task A_cold_backup_keeps_the_cluster_available_and_restores_a_node_and_a_cluster()
    {
        await using var f = await ClusterFixture.StartAsync(shards: 2);
        using var dir = new TempFolder();
        var acked = new List<ReplicationKey>();
        await WriteBatchAsync(f, acked, 0, 150);
        int node = f.LeaderOf(0); // the hardest case: it leads a shard

        using var stop = new CancellationTokenSource();
        int failures = 0;
        var writer = Task.Run(async () =>
        {
            for (int round = 1; round <= 1000 && !stop.IsCancellationRequested; round++)
                failures += await WriteBatchAsync(f, acked, round, 5, throwOnError: false);
        });
        string backup = Path.Combine(dir.Path, "cold");
        var result = await f.Cluster.BackupNodeColdAsync(node, backup, null, ClusterFixture.Bound, None);
        int ackedAfter;
        lock (acked) ackedAfter = acked.Count;
        ClusterFixture.Eventually(() => { lock (acked) return acked.Count >= ackedAfter + 50 || writer.IsCompleted; }, "writes continue after the cold backup");
        stop.Cancel();
        await writer;
        Assert.Equal(0, failures);

        Assert.Equal(BackupKind.Cold, result.Kind);
        Assert.Equal(node, result.NodeId);
        Assert.Equal(NodeState.Running, f.Cluster.GetNode(node).State);
        Assert.True(Backups.Verify(backup, None).Valid);
        Assert.Equal(new[] { "raft.db", "state.db" }, Directory.GetFiles(backup).Select(Path.GetFileName).Where(n => n != "backup.json").Order());
        Assert.Equal(2, result.Shards.Count);

        // Restore the node from its cold backup; it catches up from its peers.
        var wrong = await Assert.ThrowsAsync<BackupPathException>(() => f.Cluster.RestoreNodeAsync(node % 3 + 1, backup, false, null, ClusterFixture.Bound, None));
        Assert.Equal("BackupMismatch", wrong.ErrorId);
        var rebuilt = await f.Cluster.RestoreNodeAsync(node, backup, false, null, ClusterFixture.Bound, None);
        Assert.True(rebuilt.Completed && rebuilt.FromBackup, rebuilt.Message);
        bool caughtUp = SpinWait.SpinUntil(() =>
        {
            var nodes = f.Cluster.GetNodes();
            return nodes.All(n => n.State == NodeState.Running && n.LagEntries == 0) && nodes.Select(n => n.AppliedIndex).Distinct().Count() == 1;
        }, ClusterFixture.Bound);
        Assert.True(caughtUp, "the restored node did not catch up: " + string.Join(" | ",
            f.Cluster.GetNodes().Select(n => $"node {n.Id} {n.State} applied {n.AppliedIndex} commit {n.CommitIndex} lag {n.LagEntries} term {n.Term} led {n.ShardsLed} ({n.StateReason})"))
            + " shards: " + string.Join(" | ", f.Cluster.GetShards().Select(s => $"{s.Id}: leader {s.Leader} term {s.Term} commit {s.CommitIndex}")));
        var checks = await f.Cluster.CheckConsistencyAsync(null, ClusterFixture.Bound, None);
        Assert.All(checks, c => Assert.True(c.Consistent, string.Join("; ", c.DivergentRanges)));

        // This node hosts every shard (3 nodes, replication factor 3), so its cold backup restores a whole cluster.
        await using var restored = await EmbeddedCluster.RestoreAsync(backup, new ClusterOptions { Name = "fromcold", Path = Path.Combine(dir.Path, "restored") }, null, ClusterFixture.Bound, None);
        await restored.WaitForLeadersAsync(null, ClusterFixture.Bound, None);
        long keys = 0;
        await foreach (var _ in restored.ScanAsync("", ReadConsistency.Linearizable, ClusterFixture.Bound, None)) keys++;
        Assert.Equal(result.KeyCount, keys);
    }

    [Fact]
    public async Task A_cold_backup_that_would_cost_a_quorum_is_refused_before_stopping_anything()
    {
        await using var f = await ClusterFixture.StartAsync(shards: 1);
        await f.Cluster.StopNodeAsync(1, kill: false, None);
        using var dir = new TempFolder();
        string backup = Path.Combine(dir.Path, "cold");
        var ex = await Assert.ThrowsAsync<QuorumAtRiskException>(() => f.Cluster.BackupNodeColdAsync(2, backup, null, ClusterFixture.Bound, None));
        Assert.Equal("QuorumAtRisk", ex.ErrorId);
        Assert.Equal(NodeState.Running, f.Cluster.GetNode(2).State);
        Assert.False(Directory.Exists(backup));
        // A stopped node can always be backed up.
        var cold = await f.Cluster.BackupNodeColdAsync(1, backup, null, ClusterFixture.Bound, None);
        Assert.Equal(NodeState.Stopped, f.Cluster.GetNode(1).State);
        Assert.True(Backups.Verify(backup, None).Valid);
        Assert.Equal(1, cold.NodeId);
    }

    [Fact]
    public async Task A_cold_backup_that_would_cost_the_metadata_group_its_quorum_is_refused()
    {
        // Five nodes, one shard on three of them: with the two others stopped, the shard keeps a running quorum without any
        // one of its replicas, but the metadata group (voters 1-5) keeps three running voters only; a cold copy of a third
        // would leave it two of five.
        await using var f = await ClusterFixture.StartAsync(nodes: 5, shards: 1);
        // The ring may still be moving the shard when the cluster starts (a full engine run, stop 30, read its voters as
        // three while it moved to a fourth): the holders are read once the placement is carried out.
        await f.Cluster.WaitForPlacementAsync(null, ClusterFixture.Bound, None);
        var holders = f.Cluster.GetShards().Single().Voters;
        var others = Enumerable.Range(1, 5).Except(holders).ToArray();
        Assert.Equal(2, others.Length);
        foreach (int n in others) await f.Cluster.StopNodeAsync(n, kill: false, None);
        using var dir = new TempFolder();
        string backup = Path.Combine(dir.Path, "cold");
        var ex = await Assert.ThrowsAsync<QuorumAtRiskException>(() => f.Cluster.BackupNodeColdAsync(holders[0], backup, null, ClusterFixture.Bound, None));
        Assert.Equal(ClusterMetadata.MetadataGroup, ex.Shard);
        Assert.Contains("metadata group", ex.Message);
        Assert.Contains($"{others[0]}, {others[1]}", ex.Message);
        Assert.False(Directory.Exists(backup));
        Assert.Equal(NodeState.Running, f.Cluster.GetNode(holders[0]).State);
        // With one of them back, the copy goes ahead.
        await f.Cluster.StartNodeAsync(others[0], None);
        var cold = await f.Cluster.BackupNodeColdAsync(holders[0], backup, null, ClusterFixture.Bound, None);
        Assert.True(Backups.Verify(backup, None).Valid);
        Assert.Equal(holders[0], cold.NodeId);
    }

    /// <summary>Writes keys k:0..k:(count-1) of a round (overwriting earlier rounds' values) and records the acknowledged ones.</summary>
    internal static async Task<int> WriteBatchAsync(ClusterFixture f, List<ReplicationKey> acked, int round, int count, bool throwOnError = true)
    {
        var writes = Enumerable.Range(0, count).Select(i => new KeyWrite($"k:{(round * 7 + i) % 300}", $"r{round}-{i}")).ToArray();
        var results = await f.Cluster.WriteAsync(writes, WriteConcern.Majority, ClusterFixture.Bound, None);
        int failed = 0;
        lock (acked)
        {
            foreach (var r in results)
            {
                if (r.Error is not null)
                {
                    if (throwOnError) throw r.Error;
                    failed++;
                }
                else acked.Add(r.Record!);
            }
        }
        return failed;
    }

    /// <summary>IProgress that reports synchronously (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value)
        {
            lock (this) report(value);
        }
    }
}
