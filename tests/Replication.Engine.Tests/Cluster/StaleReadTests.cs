using Replication.Engine.Cluster;
using Xunit;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// Stale reads say which replica served them and how far behind it was, and a lag bound (-MaxLag) makes a replica that
/// is further behind refuse. The lagging replica is made by cutting a follower's Raft traffic off: it stops receiving
/// entries, while the status reports it polls from its peers (another channel) still tell it the leader's commit index.
/// </summary>
public sealed class StaleReadTests
{
    /// <summary>
    /// Three nodes, one shard, k = v1, and every replica caught up as it knows itself: it applied the write, and the commit
    /// index it knows (its own, or from its fresh peer reports) is no further. Not the cluster's status (bug fixed, a flake
    /// at load 40): there one node shows the others from their last reports, which may predate the write, so lag 0 there
    /// did not mean a replica had applied it, and that replica's read with -MaxLag 0 came before the write.
    /// </summary>
    private static async Task<ClusterFixture> StartWithOneWriteEverywhereAsync()
    {
        var f = await ClusterFixture.StartAsync(nodes: 3, shards: 1);
        try
        {
            var v1 = await f.PutAsync("k", "v1");
            ClusterFixture.Eventually(() => new[] { 1, 2, 3 }.All(id => f.Cluster.Node(id) is { } n
                && n.Host.Status.TryGetValue(v1.Shard, out var st) && st.Applied >= v1.Index && n.GetNode(id).LagEntries == 0),
                "every replica applied the write and knows itself caught up");
            return f;
        }
        catch
        {
            await f.DisposeAsync();
            throw;
        }
    }

    [Fact]
    public async Task A_stale_read_reports_its_replica_and_lag_and_a_lagging_replica_refuses_a_tighter_bound()
    {
        await using var f = await StartWithOneWriteEverywhereAsync();

        // Caught up: every replica serves with lag 0 and names itself; a linearizable read names no replica.
        foreach (var id in new[] { 1, 2, 3 })
        {
            var read = await f.Cluster.Node(id)!.GetAsync("k", ReadConsistency.Stale, ClusterFixture.Bound, CancellationToken.None, maxLag: 0);
            Assert.Equal(("v1", id, 0L), (read!.Value, read.ReadFrom, read.LagEntries));
        }
        var linearizable = await f.Cluster.GetAsync("k", ReadConsistency.Linearizable, ClusterFixture.Bound, CancellationToken.None);
        Assert.Equal((null, null), (linearizable!.ReadFrom, linearizable.LagEntries));
        var viaClient = await f.Cluster.GetAsync("k", ReadConsistency.Stale, ClusterFixture.Bound, CancellationToken.None);
        Assert.Contains(viaClient!.ReadFrom!.Value, new[] { 1, 2, 3 });

        int leader = f.LeaderOf(0);
        int follower = new[] { 1, 2, 3 }.First(n => n != leader);
        var node = f.Cluster.Node(follower)!;
        node.Host.CutOff(new[] { 1, 2, 3 }.Where(n => n != follower));
        for (int i = 2; i <= 6; i++) await f.PutAsync("k", "v" + i);
        ClusterFixture.Eventually(() => node.GetNode(follower).LagEntries >= 5, $"node {follower} knows it is 5 entries behind");
        // Its lag in seconds grows while it stays behind; the shard shows its furthest-behind replica.
        ClusterFixture.Eventually(() => node.GetNode(follower).LagSeconds >= 0.5, $"node {follower} has been behind for half a second");
        ClusterFixture.Eventually(() => f.Cluster.GetShards()[0] is { LagEntries: >= 5, LagSeconds: > 0 }, "shard 0 shows its lagging replica");

        var refused = await Assert.ThrowsAsync<ReplicaTooStaleException>(() =>
            node.GetAsync("k", ReadConsistency.Stale, ClusterFixture.Bound, CancellationToken.None, maxLag: 0));
        Assert.Equal((follower, 0, "ReplicaTooStale", "k"), (refused.Node, refused.Shard, refused.ErrorId, refused.Target));
        Assert.True(refused.LagEntries >= 5, $"lag {refused.LagEntries}");
        // An absent key is refused too: the bound is on the replica, not on what it holds.
        await Assert.ThrowsAsync<ReplicaTooStaleException>(() =>
            node.GetAsync("absent", ReadConsistency.Stale, ClusterFixture.Bound, CancellationToken.None, maxLag: 4));

        var old = await node.GetAsync("k", ReadConsistency.Stale, ClusterFixture.Bound, CancellationToken.None, maxLag: 1000);
        Assert.Equal(("v1", follower), (old!.Value, old.ReadFrom));
        Assert.True(old.LagEntries >= 5, $"lag {old.LagEntries}");
        // The bound limits stale reads only: a linearizable read through the lagging node goes to the leader.
        var fresh = await node.GetAsync("k", ReadConsistency.Linearizable, ClusterFixture.Bound, CancellationToken.None, maxLag: 0);
        Assert.Equal("v6", fresh!.Value);

        node.Host.CutOff(Array.Empty<int>());
        ClusterFixture.Eventually(() => node.GetNode(follower) is { LagEntries: 0, LagSeconds: 0 }, $"node {follower} caught up");
        ClusterFixture.Eventually(() => f.Cluster.GetShards()[0] is { LagEntries: 0, LagSeconds: 0 }, "shard 0 shows every replica caught up");
        var caughtUp = await node.GetAsync("k", ReadConsistency.Stale, ClusterFixture.Bound, CancellationToken.None, maxLag: 0);
        Assert.Equal(("v6", follower, 0L), (caughtUp!.Value, caughtUp.ReadFrom, caughtUp.LagEntries));
    }

    /// <summary>
    /// A replica that has heard from no peer hosting its shard cannot know how far behind it is: a follower's own commit
    /// index counts only entries it received. Before, it showed lag 0 and served -MaxLag 0 reads from a copy missing
    /// acknowledged writes (a CI run: a learner just restarted, lag 0, served 21 of 30 keys). Now its lag is null, a bounded
    /// read is refused, an unbounded one answers without a lag, and the health check warns; peers back, it knows again.
    /// </summary>
    [Fact]
    public async Task A_replica_that_hears_from_no_peer_shows_its_lag_as_unknown_and_refuses_a_bounded_read()
    {
        await using var f = await StartWithOneWriteEverywhereAsync();

        int leader = f.LeaderOf(0);
        int alone = new[] { 1, 2, 3 }.First(n => n != leader);
        var others = new[] { 1, 2, 3 }.Where(n => n != alone).ToArray();
        foreach (int id in others) await f.Cluster.StopNodeAsync(id, kill: true, CancellationToken.None);
        var node = f.Cluster.Node(alone)!;
        ClusterFixture.Eventually(() => node.GetNode(alone).LagEntries is null, $"node {alone}, alone, no longer claims a lag");
        Assert.Null(node.GetShards()[0].LagEntries);

        var refused = await Assert.ThrowsAsync<ReplicaTooStaleException>(() =>
            node.GetAsync("k", ReadConsistency.Stale, ClusterFixture.Bound, CancellationToken.None, maxLag: 1000));
        Assert.Equal((alone, 0, (long?)null, 1000L), (refused.Node, refused.Shard, refused.LagEntries, refused.MaxLag));
        Assert.Contains("does not know how far", refused.Message);
        var unbounded = await node.GetAsync("k", ReadConsistency.Stale, ClusterFixture.Bound, CancellationToken.None);
        Assert.Equal(("v1", alone, (long?)null), (unbounded!.Value, unbounded.ReadFrom, unbounded.LagEntries));
        var lag = (await HealthChecks.RunAsync(f.Cluster, ClusterFixture.Bound, CancellationToken.None)).Single(c => c.Check == "ReplicaLag" && c.Target == $"node {alone}");
        Assert.Equal(HealthResult.Warning, lag.Result);
        Assert.StartsWith("Lag not known", lag.Detail);

        foreach (int id in others) await f.Cluster.StartNodeAsync(id, CancellationToken.None);
        ClusterFixture.Eventually(() => node.GetNode(alone).LagEntries == 0, $"node {alone} knows its lag again, with its peers back");
        var bounded = await node.GetAsync("k", ReadConsistency.Stale, ClusterFixture.Bound, CancellationToken.None, maxLag: 0);
        Assert.Equal(("v1", alone, (long?)0), (bounded!.Value, bounded.ReadFrom, bounded.LagEntries));
    }
}
