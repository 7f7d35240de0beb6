using Replication.Engine.Cluster;
using Xunit;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// The embedded cluster end to end: real node loops, loopback TCP and SQLite files. These check
/// behaviour a user relies on (acknowledged writes survive failover and restarts; errors are typed
/// and bounded), not timing.
/// </summary>
public sealed class EmbeddedClusterTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task An_acknowledged_write_is_already_in_the_published_status_of_the_node_that_acknowledged_it()
    {
        // Status readers (Get-ReplicationNode lag, catch-up waits, backups) must never see a node
        // "behind" a write its caller already holds an acknowledgement for. Frequent snapshots keep the
        // node loop busy after it applies a write, which is when a caller could otherwise look too early.
        await using var f = await ClusterFixture.StartAsync(shards: 2, configure: o => o with { SnapshotEntries = 2, SnapshotCatchUpEntries = 1 });
        for (int i = 0; i < 200; i++)
        {
            var written = await f.PutAsync($"s{i}", "v");
            var statuses = f.Cluster.GetNodes().Select(n => f.Cluster.Node(n.Id)!.Host.Status).Where(s => s.ContainsKey(written.Shard)).Select(s => s[written.Shard]).ToArray();
            Assert.Contains(statuses, s => s.Committed >= written.Index && s.Applied >= written.Index);
        }
    }

    [Theory]
    [InlineData(3)]
    [InlineData(6)]
    public async Task A_new_cluster_returns_with_its_metadata_group_formed_so_any_node_restarts_at_once(int nodes)
    {
        // New-ReplicationCluster then Restart-ReplicationNode was refused (QuorumAtRisk) 1.6 s after the cluster formed: the
        // metadata group, which grows one node at a time after the data shards formed, still had voters {1,2} and node 3
        // learning. A new cluster returns only once it votes on the lowest five ids and every other node learns.
        await using var f = await ClusterFixture.StartAsync(nodes: nodes, shards: 1);
        var views = f.Cluster.NodeIds.Select(id => f.Cluster.Node(id)!.GroupStatuses.Single(g => g.Shard == ClusterMetadata.MetadataGroup)).ToArray();
        var voters = Enumerable.Range(1, Math.Min(nodes, ClusterMetadata.MaxMetadataVoters)).ToArray();
        var learners = Enumerable.Range(voters.Length + 1, nodes - voters.Length).ToArray();
        // Membership only grows here, so the node that led it when the cluster returned still has it (followers may be a step behind).
        Assert.Contains(views, v => v.Voters.Order().SequenceEqual(voters) && v.Learners.Order().SequenceEqual(learners));

        var restarted = await f.Cluster.RestartNodeAsync(1, TimeSpan.FromSeconds(60), None);
        Assert.Equal((1, NodeState.Running, false), (restarted.Id, restarted.State, restarted.Suspended));
    }

    [Fact]
    public async Task Writes_are_readable_from_every_consistency_level()
    {
        await using var f = await ClusterFixture.StartAsync();
        var written = await f.PutAsync("greeting", "hello");
        Assert.Equal(1, written.Version);
        foreach (var c in new[] { ReadConsistency.Linearizable, ReadConsistency.Lease })
            Assert.Equal("hello", (await f.Cluster.GetAsync("greeting", c, ClusterFixture.Bound, None))?.Value);
        // A stale read may lag, but catches up: every replica applies the write.
        ClusterFixture.Eventually(() => f.Cluster.GetNodes().All(n => n.LagEntries == 0), "replicas caught up");
        Assert.Equal("hello", (await f.Cluster.GetAsync("greeting", ReadConsistency.Stale, ClusterFixture.Bound, None))?.Value);
        Assert.Null(await f.Cluster.GetAsync("absent", ReadConsistency.Linearizable, ClusterFixture.Bound, None));
    }

    [Fact]
    public async Task Versions_grow_and_conditional_writes_conflict_without_a_trace()
    {
        await using var f = await ClusterFixture.StartAsync();
        Assert.Equal(1, (await f.PutAsync("k", "a", expected: 0)).Version);
        Assert.Equal(2, (await f.PutAsync("k", "b", expected: 1)).Version);
        var ex = await Assert.ThrowsAsync<VersionConflictException>(() => f.PutAsync("k", "c", expected: 1));
        Assert.Equal(2, ex.ActualVersion);
        var now = await f.Cluster.GetAsync("k", ReadConsistency.Linearizable, ClusterFixture.Bound, None);
        Assert.Equal(("b", 2L), (now!.Value, now.Version));
    }

    [Fact]
    public async Task A_batch_reports_bad_items_and_writes_the_rest()
    {
        await using var f = await ClusterFixture.StartAsync();
        var writes = new[] { new KeyWrite("ok1", "v"), new KeyWrite("", "v"), new KeyWrite(new string('k', 2000), "v"), new KeyWrite("ok2", "v") };
        var results = await f.Cluster.WriteAsync(writes, WriteConcern.Majority, ClusterFixture.Bound, None);
        Assert.Null(results[0].Error);
        Assert.Equal(InvalidKeyException.EmptyKey, results[1].Error?.ErrorId);
        Assert.Equal(InvalidKeyException.KeyTooLong, results[2].Error?.ErrorId);
        Assert.Null(results[3].Error);
        var keys = new List<string>();
        await foreach (var k in f.Cluster.ScanAsync("", ReadConsistency.Linearizable, ClusterFixture.Bound, None)) keys.Add(k.Key);
        Assert.Equal(new[] { "ok1", "ok2" }, keys);
    }

    [Fact]
    public async Task Prefix_scan_merges_shards_in_key_order()
    {
        await using var f = await ClusterFixture.StartAsync(shards: 4);
        var keys = Enumerable.Range(0, 300).Select(i => $"user:{i:D4}").Reverse().ToArray();
        var results = await f.Cluster.WriteAsync(keys.Select(k => new KeyWrite(k, "v" + k)).Concat(new[] { new KeyWrite("other", "x") }).ToArray(),
            WriteConcern.Majority, ClusterFixture.Bound, None);
        Assert.All(results, r => Assert.Null(r.Error));
        Assert.True(results.Select(r => r.Record!.Shard).Distinct().Count() > 1, "keys should spread over shards");
        var scanned = new List<string>();
        await foreach (var k in f.Cluster.ScanAsync("user:", ReadConsistency.Linearizable, ClusterFixture.Bound, None)) scanned.Add(k.Key);
        Assert.Equal(keys.OrderBy(k => k, StringComparer.Ordinal), scanned);
    }

    [Fact]
    public async Task Acknowledged_writes_survive_killing_the_leader_and_the_node_catches_up_on_restart()
    {
        await using var f = await ClusterFixture.StartAsync(shards: 2);
        var acked = new Dictionary<string, string>();
        for (int i = 0; i < 50; i++) acked[$"a{i}"] = (await f.PutAsync($"a{i}", $"v{i}")).Value;

        int leader = f.LeaderOf(0);
        Assert.NotEqual(0, leader);
        await f.Cluster.StopNodeAsync(leader, kill: true, None);
        Assert.Equal(NodeState.Stopped, f.Cluster.GetNode(leader).State);

        await f.Cluster.WaitForLeadersAsync(null, ClusterFixture.Bound, None);
        Assert.All(f.Cluster.GetShards(), s => Assert.NotEqual(leader, s.Leader));
        for (int i = 50; i < 100; i++) acked[$"a{i}"] = (await f.PutAsync($"a{i}", $"v{i}")).Value;
        foreach (var (k, v) in acked)
            Assert.Equal(v, (await f.Cluster.GetAsync(k, ReadConsistency.Linearizable, ClusterFixture.Bound, None))?.Value);

        await f.Cluster.StartNodeAsync(leader, None);
        ClusterFixture.Eventually(() =>
        {
            var nodes = f.Cluster.GetNodes();
            return nodes.All(n => n.State == NodeState.Running) && nodes.Select(n => n.AppliedIndex).Distinct().Count() == 1
                && nodes.All(n => n.LagEntries == 0);
        }, "restarted node caught up with the others");
    }

    [Fact]
    public async Task Without_a_quorum_a_write_fails_after_its_timeout_and_succeeds_once_quorum_returns()
    {
        await using var f = await ClusterFixture.StartAsync(shards: 1);
        await f.PutAsync("before", "1");
        int[] stopped = f.Cluster.GetNodes().Select(n => n.Id).Take(2).ToArray();
        foreach (int id in stopped) await f.Cluster.StopNodeAsync(id, kill: true, None);

        var results = await f.Cluster.WriteAsync(new[] { new KeyWrite("during", "x") }, WriteConcern.Majority, TimeSpan.FromSeconds(1), None);
        var error = Assert.IsType<QuorumUnavailableException>(results[0].Error);
        Assert.Equal("QuorumUnavailable", error.ErrorId);

        foreach (int id in stopped) await f.Cluster.StartNodeAsync(id, None);
        await f.Cluster.WaitForLeadersAsync(null, ClusterFixture.Bound, None);
        await f.PutAsync("after", "2");
        Assert.Equal("1", (await f.Cluster.GetAsync("before", ReadConsistency.Linearizable, ClusterFixture.Bound, None))?.Value);
    }

    [Fact]
    public async Task Data_survives_reopening_the_cluster_from_its_folder()
    {
        await using var f = await ClusterFixture.StartAsync();
        var id = f.Cluster.Id;
        for (int i = 0; i < 20; i++) await f.PutAsync($"p{i}", $"v{i}");
        await f.ReopenAsync();
        Assert.Equal(id, f.Cluster.Id);
        for (int i = 0; i < 20; i++)
            Assert.Equal($"v{i}", (await f.Cluster.GetAsync($"p{i}", ReadConsistency.Linearizable, ClusterFixture.Bound, None))?.Value);
    }

    [Fact]
    public async Task Reopening_with_conflicting_options_is_refused_and_bad_options_are_rejected()
    {
        await using var f = await ClusterFixture.StartAsync(shards: 2);
        await f.Cluster.RemoveAsync(deleteData: false);
        var ex = await Assert.ThrowsAsync<ClusterOptionsException>(() => EmbeddedCluster.StartAsync(ClusterFixture.Options(f.Path, 3, 8), None));
        Assert.Equal(ClusterOptionsException.PathMismatch, ex.ErrorId);
        var bad = await Assert.ThrowsAsync<ClusterOptionsException>(() =>
            EmbeddedCluster.StartAsync(ClusterFixture.Options(f.Path + "-rf", 2, 1) with { ReplicationFactor = 3 }, None));
        Assert.Equal(ClusterOptionsException.Invalid, bad.ErrorId);
    }

    [Fact]
    public async Task A_removed_cluster_and_unknown_nodes_give_typed_errors()
    {
        await using var f = await ClusterFixture.StartAsync(shards: 1);
        Assert.Equal("NodeNotFound", Assert.Throws<NodeNotFoundException>(() => f.Cluster.GetNode(9)).ErrorId);
        await f.Cluster.RemoveAsync(deleteData: false);
        Assert.False(f.Cluster.IsRunning);
        Assert.Throws<ClusterNotRunningException>(() => f.Cluster.GetNodes());
        await Assert.ThrowsAsync<ClusterNotRunningException>(() => f.Cluster.WriteAsync(new[] { new KeyWrite("k", "v") }, WriteConcern.Majority, ClusterFixture.Bound, None));
    }
}
