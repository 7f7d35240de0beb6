using Replication.Engine.Cluster;
using Replication.Engine.Storage;
using Xunit;

namespace Replication.Engine.Tests.Cluster;

/// <summary>Test-ReplicationCluster's checks (HealthChecks.cs) on a real cluster: a healthy one passes, a lost majority fails,
/// a node whose clock is off warns, and the disk check warns and fails at thresholds above the machine's free space.</summary>
public class HealthCheckTests
{
    [Fact]
    public async Task Quorum_and_leader_fail_once_a_majority_is_down_and_the_stopped_nodes_fail_reachability()
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 2);
        IReadOnlyList<ReplicationHealthCheck> checks = Array.Empty<ReplicationHealthCheck>();
        ClusterFixture.Eventually(() =>
        {
            checks = HealthChecks.RunAsync(f.Cluster, ClusterFixture.Bound, CancellationToken.None).GetAwaiter().GetResult();
            return checks.All(c => c.Result == HealthResult.Pass || c.Check == "LeaderBalance"); // spreading leaders is the balancer's business
        }, "every check but LeaderBalance passes on a healthy cluster");
        Assert.Equal(2, checks.Count(c => c.Check == "Quorum"));

        await f.Cluster.StopNodeAsync(2, kill: true, CancellationToken.None);
        await f.Cluster.StopNodeAsync(3, kill: true, CancellationToken.None);
        ClusterFixture.Eventually(() =>
        {
            checks = HealthChecks.RunAsync(f.Cluster, ClusterFixture.Bound, CancellationToken.None).GetAwaiter().GetResult();
            return checks.Where(c => c.Check is "Quorum" or "Leader").All(c => c.Result == HealthResult.Fail);
        }, "quorum and leader fail for every shard");
        Assert.Equal(new[] { "node 2", "node 3" }, checks.Where(c => c.Check == "NodeReachable" && c.Result == HealthResult.Fail).Select(c => c.Target));
        Assert.Contains("1 of 3 voters running", checks.First(c => c.Check == "Quorum").Detail);
    }

    [Theory]
    [InlineData(StoreLayout.FilePerNode, false)]
    [InlineData(StoreLayout.FilePerShard, false)]
    [InlineData(StoreLayout.FilePerShard, true)]
    public async Task Every_node_reports_the_layout_its_folder_has_and_one_layout_passes_the_layout_check(StoreLayout layout, bool reopen)
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 1, configure: o => o with { StoreLayout = layout });
        if (reopen) await f.ReopenAsync(); // without StoreLayout: the folders' own layout
        ClusterFixture.Eventually(() => f.Cluster.GetNodes().All(n => n.StoreLayout == layout), $"every node reports {layout}");
        var check = (await HealthChecks.RunAsync(f.Cluster, ClusterFixture.Bound, CancellationToken.None)).Single(c => c.Check == "StoreLayout");
        Assert.Equal(HealthResult.Pass, check.Result);
        Assert.Equal($"Every running node keeps its state as {layout}.", check.Detail);
    }

    [Fact]
    public async Task A_node_whose_clock_is_off_warns_and_the_disk_check_warns_and_fails_below_its_thresholds()
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 1);
        IReadOnlyList<ReplicationHealthCheck> checks = Array.Empty<ReplicationHealthCheck>();
        ClusterFixture.Eventually(() =>
        {
            checks = HealthChecks.RunAsync(f.Cluster, ClusterFixture.Bound, CancellationToken.None).GetAwaiter().GetResult();
            return checks.Count(c => c.Check == "ClockOffset" && c.Result == HealthResult.Pass) == 3;
        }, "every node's clock is within the bound of this machine's");
        Assert.Equal(3, checks.Count(c => c.Check == "Disk"));
        Assert.All(f.Cluster.GetNodes(), n => Assert.True(n.DiskFreeBytes > 0, $"node {n.Id} reports its free space"));

        // Node 2 reports a clock 5 s ahead: every node's view of it (through its next status report) shows the offset.
        f.Cluster.Node(2)!.ClockSkew = TimeSpan.FromSeconds(5);
        ClusterFixture.Eventually(() =>
        {
            checks = HealthChecks.RunAsync(f.Cluster, ClusterFixture.Bound, CancellationToken.None).GetAwaiter().GetResult();
            return checks.Single(c => c.Check == "ClockOffset" && c.Target == "node 2").Result == HealthResult.Warning;
        }, "node 2's clock offset warns");
        // About +5000 ms: the offset is measured through the status reports, to within their round trip.
        Assert.Matches(@"^Clock \+(4[5-9]|5[0-4])\d\d ms", checks.Single(c => c.Check == "ClockOffset" && c.Target == "node 2").Detail);
        Assert.All(checks.Where(c => c.Check == "ClockOffset" && c.Target != "node 2"), c => Assert.Equal(HealthResult.Pass, c.Result));
        f.Cluster.Node(2)!.ClockSkew = TimeSpan.Zero;

        // Thresholds above any real free space: every node warns, then fails.
        var warned = await HealthChecks.RunAsync(f.Cluster, ClusterFixture.Bound, CancellationToken.None, long.MaxValue / 2, 0);
        Assert.All(warned.Where(c => c.Check == "Disk"), c => Assert.Equal(HealthResult.Warning, c.Result));
        var failed = await HealthChecks.RunAsync(f.Cluster, ClusterFixture.Bound, CancellationToken.None, long.MaxValue / 2, long.MaxValue / 2);
        Assert.All(failed.Where(c => c.Check == "Disk"), c => Assert.Equal(HealthResult.Fail, c.Result));
        Assert.Contains("free", failed.First(c => c.Check == "Disk").Detail);
    }

    [Fact]
    public async Task The_storage_check_runs_only_on_request_passes_a_healthy_cluster_and_fails_a_store_damaged_under_a_running_node()
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 1);
        string payload = new('v', 300);
        for (int i = 0; i < 300; i++) await f.PutAsync($"k{i:D3}", $"{i}-{payload}");
        ClusterFixture.Eventually(() => f.Cluster.GetNodes().All(n => n.LagEntries == 0), "all replicas applied every write");

        Assert.DoesNotContain(await HealthChecks.RunAsync(f.Cluster, ClusterFixture.Bound, CancellationToken.None), c => c.Check == "Storage");
        var healthy = await HealthChecks.RunAsync(f.Cluster, ClusterFixture.Bound, CancellationToken.None, storage: true);
        Assert.Equal(new[] { "node 1", "node 2", "node 3" }, healthy.Where(c => c.Check == "Storage").Select(c => c.Target));
        Assert.All(healthy.Where(c => c.Check == "Storage"), c =>
        {
            Assert.Equal(HealthResult.Pass, c.Result);
            Assert.Matches(@"^SQLite's quick_check passed: raft\.db \([0-9.]+ MiB, [0-9.]+ s\), state\.db \([0-9.]+ MiB, [0-9.]+ s\)\.$", c.Detail);
        });

        // A page of node 3's state.db goes bad while it runs (one the WAL does not hold, so no reader sees a newer copy).
        StorageDamage.ZeroPageOutsideWal(System.IO.Path.Combine(f.Path, "node-3", "state.db"));
        var damaged = await HealthChecks.RunAsync(f.Cluster, ClusterFixture.Bound, CancellationToken.None, storage: true);
        var storage = damaged.Where(c => c.Check == "Storage").ToDictionary(c => c.Target);
        Assert.Equal((HealthResult.Pass, HealthResult.Pass), (storage["node 1"].Result, storage["node 2"].Result));
        Assert.True(storage["node 3"].Result == HealthResult.Fail, storage["node 3"].Detail);
        Assert.Contains("state.db", storage["node 3"].Detail);
        Assert.Contains("Restore-ReplicationNode -Id 3", storage["node 3"].Detail);
        var events = await f.Cluster.GetEventsAsync(null, new[] { ReplicationEventType.StorageCorrupt }, Array.Empty<int>(), new[] { 3 }, null, ClusterFixture.Bound, CancellationToken.None);
        Assert.Contains(events.Events, e => e.Node == 3 && e.Message.Contains("state.db"));
    }
}
