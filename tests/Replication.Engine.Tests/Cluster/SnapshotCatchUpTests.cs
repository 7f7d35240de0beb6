using Replication.Engine.Cluster;
using Xunit;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// Log compaction and InstallSnapshot through the real node host (Raft paper section 7): a
/// replica that was down while the others compacted their logs catches up from a streamed
/// snapshot, also when it crashes in the middle of receiving one, and restarts from it.
/// </summary>
public sealed class SnapshotCatchUpTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    private static ClusterOptions SmallSnapshots(ClusterOptions o, int chunkBytes) =>
        o with { SnapshotEntries = 40, SnapshotCatchUpEntries = 5, SnapshotChunkBytes = chunkBytes };

    private static async Task WriteManyEntries(ClusterFixture f, int from, int count)
    {
        // One write per call: every write is its own log entry, so the logs grow past the threshold.
        for (int i = from; i < from + count; i++) await f.PutAsync($"k{i:D5}", $"v{i}");
    }

    /// <summary>Node 3 is killed after 20 writes and misses 150 more while the others compact their logs past what it has,
    /// then starts again: it can catch up only from a snapshot (its waits are bounded).</summary>
    private static async Task RestartNode3BehindACompactedLogAsync(ClusterFixture f)
    {
        await WriteManyEntries(f, 0, 20);
        long behind = f.Cluster.Node(3)!.Host.Status[0].Applied;
        await f.Cluster.StopNodeAsync(3, kill: true, None);
        await WriteManyEntries(f, 20, 150);
        f.WaitUntilQueuedAppendsAreDropped(0); // else node 3 may catch up from appends queued for it
        ClusterFixture.Eventually(() => f.Cluster.Node(1)?.Host!.Status[0].SnapshotIndex > behind && f.Cluster.Node(2)?.Host!.Status[0].SnapshotIndex > behind,
            "the running replicas compacted their logs past node 3");
        await f.Cluster.StartNodeAsync(3, None);
        ClusterFixture.Eventually(() => CaughtUp(f, 3), "node 3 caught up from a snapshot");
    }

    private static bool CaughtUp(ClusterFixture f, int node)
    {
        var nodes = f.Cluster.GetNodes();
        return nodes.All(n => n.State == NodeState.Running) && nodes.All(n => n.LagEntries == 0)
            && nodes.Select(n => n.AppliedIndex).Distinct().Count() == 1
            && f.Cluster.Node(node)?.Host is { } host && host.Status.Values.Where(s => s.Shard != ClusterMetadata.MetadataGroup).All(s => s.SnapshotIndex > 0);
    }

    private static List<string> LocalKeys(ClusterFixture f, int node, int shard) =>
        f.Cluster.Node(node)!.Host.Store.Scan(shard, "").Select(k => $"{k.Key}={k.Value}@{k.Version}").ToList();

    [Fact]
    public async Task A_replica_behind_a_compacted_log_catches_up_from_a_snapshot_and_restarts_from_it()
    {
        await using var f = await ClusterFixture.StartAsync(shards: 1, configure: o => SmallSnapshots(o, 512));
        await RestartNode3BehindACompactedLogAsync(f);
        int leader = f.LeaderOf(0);
        Assert.Equal(LocalKeys(f, leader, 0), LocalKeys(f, 3, 0));
        Assert.Equal(170, LocalKeys(f, 3, 0).Count);

        // Its own files now start at the snapshot: it restarts from them, and keeps replicating.
        await f.Cluster.StopNodeAsync(3, kill: true, None);
        await f.Cluster.StartNodeAsync(3, None);
        await WriteManyEntries(f, 170, 10);
        ClusterFixture.Eventually(() => CaughtUp(f, 3), "node 3 caught up after its restart");
        Assert.Equal(LocalKeys(f, f.LeaderOf(0), 0), LocalKeys(f, 3, 0));
    }

    [Fact]
    public async Task A_replica_with_data_stages_the_snapshot_beside_its_rows_and_acknowledges_it_once_swapped_in()
    {
        // Node 3 holds data and a log, so it stages the rows beside its own and swaps them in by steps (NodeHost.Snapshots.cs,
        // KvStore.StagedInstall.cs): in one transaction, a 33 MB shard held its loop about a second. The last chunk is
        // acknowledged only once the rows are in: acknowledged before, the leader's transfer ended first, and with it the
        // hold on its log (CompactionPoint): it compacted past the snapshot meanwhile and sent the whole shard again (ring
        // bench, a restart).
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await using var f = await ClusterFixture.StartAsync(shards: 1, configure: o => SmallSnapshots(o, 512) with { Log = lines.Enqueue });
        await RestartNode3BehindACompactedLogAsync(f);

        AssertInstalledBeforeTheTransferEnded(lines, "(staged and swapped)");
        Assert.Equal(LocalKeys(f, f.LeaderOf(0), 0), LocalKeys(f, 3, 0));
        Assert.Equal(0, StagedRows(f, 3)); // nothing left beside the shard's rows
        // A snapshot this small (170 rows) is stored at once when it arrives, not in rested slices (NodeHost.SmallInstallBytes).
        Assert.True(f.Cluster.Node(3)!.Host.SmallInstalls >= 1, "node 3 stored the snapshot at once");
    }

    [Fact]
    public async Task With_a_file_per_shard_a_replica_with_data_takes_an_image_of_the_leaders_file_in_place_of_its_own()
    {
        // The layout of a file per shard: the leader sends its shard's file as it lies (an image), and node 3 puts the image
        // in place of its own file at once, instead of staging rows beside its own and swapping them in by steps.
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await using var f = await ClusterFixture.StartAsync(shards: 1,
            configure: o => SmallSnapshots(o, 512) with { Log = lines.Enqueue, StoreLayout = Replication.Engine.Storage.StoreLayout.FilePerShard });
        await RestartNode3BehindACompactedLogAsync(f);

        AssertInstalledBeforeTheTransferEnded(lines, "(image, in place of the old file)");
        Assert.Equal(LocalKeys(f, f.LeaderOf(0), 0), LocalKeys(f, 3, 0));
        string node3 = Path.Combine(f.Path, "node-3");
        Assert.False(File.Exists(Path.Combine(node3, "state.db")));
        Assert.True(File.Exists(Path.Combine(node3, "shards", "shard-0.db")));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(node3, "snapshots"))); // nothing of the transfer left behind

        // and the image is the shard's file from then on: a restart resumes from it
        await f.Cluster.StopNodeAsync(3, kill: true, None);
        await f.Cluster.StartNodeAsync(3, None);
        await WriteManyEntries(f, 400, 10);
        ClusterFixture.Eventually(() => CaughtUp(f, 3), "node 3 caught up after its restart");
        Assert.Equal(LocalKeys(f, f.LeaderOf(0), 0), LocalKeys(f, 3, 0));
    }

    /// <summary>Node 3 installed a snapshot of shard 0 the way <paramref name="kind"/> names, and the leader's transfer of it ended
    /// only after that (its last chunk acknowledged once the snapshot was in).</summary>
    private static void AssertInstalledBeforeTheTransferEnded(IEnumerable<string> lines, string kind)
    {
        var log = lines.ToList();
        const string Received = "node 3: shard 0: snapshot at index ";
        int installed = log.FindIndex(l => l.Contains(Received, StringComparison.Ordinal) && l.Contains(" installed: ", StringComparison.Ordinal));
        Assert.True(installed >= 0, "node 3 installed a snapshot of shard 0");
        Assert.Contains(kind, log[installed]);
        string index = log[installed][(log[installed].IndexOf(Received, StringComparison.Ordinal) + Received.Length)..].Split(' ')[0];
        int sent = log.FindIndex(l => l.Contains($": shard 0: snapshot at index {index} sent to node 3:", StringComparison.Ordinal));
        Assert.True(sent > installed, $"the leader's transfer ended (line {sent}) after node 3 installed the snapshot (line {installed})");
    }

    /// <summary>Rows left in node <paramref name="node"/>'s staging table (KvStore.StagedInstall.cs).</summary>
    private static long StagedRows(ClusterFixture f, int node)
    {
        using var conn = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(f.Path, $"node-{node}", "state.db")};Mode=ReadOnly");
        conn.Open();
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "SELECT count(*) FROM kv_staged";
        return (long)cmd.ExecuteScalar()!;
    }

    [Theory]
    [InlineData(Replication.Engine.Storage.StoreLayout.FilePerNode)]
    [InlineData(Replication.Engine.Storage.StoreLayout.FilePerShard)] // an image, written into its file as it arrives
    public async Task A_replica_killed_while_receiving_a_snapshot_gets_it_again_after_restart(Replication.Engine.Storage.StoreLayout layout)
    {
        // Tiny chunks: one row per chunk, so the transfer takes long enough to be interrupted; staged in a file from the
        // first chunk (a snapshot of over 64 MiB), so the file left by the kill is seen and must be cleared at the restart.
        await using var f = await ClusterFixture.StartAsync(shards: 1, configure: o => SmallSnapshots(o, 64) with { SnapshotStagingMemory = 0, StoreLayout = layout });
        await f.Cluster.StopNodeAsync(3, kill: true, None);
        var batch = Enumerable.Range(0, 3000).Select(i => new KeyWrite($"bulk{i:D5}", new string('x', 20))).ToArray();
        Assert.All(await f.Cluster.WriteAsync(batch, WriteConcern.Majority, ClusterFixture.Bound, None), r => Assert.Null(r.Error));
        await WriteManyEntries(f, 0, 60);
        f.WaitUntilQueuedAppendsAreDropped(0); // else node 3 may catch up from appends queued for it
        ClusterFixture.Eventually(() => f.Cluster.Node(1)?.Host!.Status[0].SnapshotIndex > 0 && f.Cluster.Node(2)?.Host!.Status[0].SnapshotIndex > 0,
            "the running replicas compacted their logs");

        // One staging file per transfer: shard-0-<n>.incoming (rows), or shard-0-<n>.incoming.image (an image being written).
        string snapshots = Path.Combine(f.Path, "node-3", "snapshots");
        await f.Cluster.StartNodeAsync(3, None);
        ClusterFixture.Eventually(() => Directory.Exists(snapshots) && Directory.EnumerateFiles(snapshots, "shard-0-*.incoming*").Any(),
            "node 3 started receiving the snapshot");
        await f.Cluster.StopNodeAsync(3, kill: true, None);

        await f.Cluster.StartNodeAsync(3, None);
        // 3,000 one-row chunks, each a round trip: on this 2-core machine under a load average of 20-30 that alone took
        // over 20 s (the usual bound), so this wait has three times the bound.
        ClusterFixture.Eventually(() => CaughtUp(f, 3), "node 3 caught up after the interrupted transfer", ClusterFixture.Bound * 3);
        Assert.Equal(LocalKeys(f, f.LeaderOf(0), 0), LocalKeys(f, 3, 0));
        Assert.Equal(3060, LocalKeys(f, 3, 0).Count);
        Assert.Empty(Directory.EnumerateFiles(snapshots, "*.incoming*")); // what the kill left went at the restart
    }
}
