using Replication.Engine.Cluster;
using Xunit;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// Asynchronous replicas (issue 10 item 4): a node added with -Learner (AddNodeAsync learner: true) follows every shard
/// as a non-voting replica, counts toward no quorum, shows its lag, and refuses a stale read with a lag bound while it
/// is behind. It is made to fall behind deterministically by cutting its Raft traffic off (NodeHost.Faults.cs): it then
/// receives no entries while its status polls (another channel) still tell it the leaders' commit indexes.
/// </summary>
public sealed class LearnerTests
{
    [Fact]
    public async Task A_learner_follows_every_shard_counts_toward_no_quorum_and_refuses_a_stale_read_beyond_its_lag_bound()
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 2);
        var added = await f.Cluster.AddNodeAsync(zone: null, learner: true, CancellationToken.None);
        int learner = added.Id;
        // The node joins first and becomes learner-only next, so the ring may have placed a voter on it meanwhile: that
        // voter leaves and comes back as a learner (MembershipPlan) once the placement no longer wants it.
        ClusterFixture.Eventually(() => f.Cluster.GetShards() is { Count: 2 } shards
            && shards.All(s => s.Learners.SequenceEqual(new[] { learner }) && s.Voters.Count == 3 && !s.Voters.Contains(learner) && !s.Placement.Contains(learner)),
            $"node {learner} is a learner (and no voter) of both shards", TimeSpan.FromSeconds(60));

        await f.PutAsync("k", "v1");
        var node = f.Cluster.Node(learner)!;
        ClusterFixture.Eventually(() => node.GetNode(learner) is { LagEntries: 0, ShardsHosted: 2 }, $"learner {learner} hosts both shards and caught up");
        // Its lag is judged against the commit indexes its status polls bring, a moment behind the write: wait for the value.
        ReplicationKey? read = null;
        await ClusterFixture.EventuallyAsync(async () => (read = await node.GetAsync("k", ReadConsistency.Stale, ClusterFixture.Bound, CancellationToken.None, maxLag: 0)) is not null,
            $"learner {learner} serves the first write", ClusterFixture.Bound);
        Assert.Equal(("v1", learner, 0L), (read!.Value, read.ReadFrom, read.LagEntries));

        // No quorum counts it: with the learner and one voter down, two of three voters remain and writes still commit.
        // Were it a voter, two of four replicas would be no majority.
        int shard = f.Cluster.GetShards().First(s => s.Leader != 0).Id;
        int voterDown = f.Cluster.GetShards().First(s => s.Id == shard).Voters.First(v => v != f.LeaderOf(shard));
        await f.Cluster.StopNodeAsync(learner, kill: true, CancellationToken.None);
        await f.Cluster.StopNodeAsync(voterDown, kill: true, CancellationToken.None);
        for (int i = 0; i < 4; i++) await f.PutAsync($"quorum-{i}", "x");
        await f.Cluster.StartNodeAsync(voterDown, CancellationToken.None);
        await f.Cluster.StartNodeAsync(learner, CancellationToken.None);
        node = f.Cluster.Node(learner)!;
        ClusterFixture.Eventually(() => node.GetNode(learner) is { LagEntries: 0, ShardsHosted: 2 }, $"learner {learner} caught up after its restart");

        // Behind: cut off from every voter, it receives no entries while the writes go on.
        node.Host.CutOff(f.Cluster.GetNodes().Select(n => n.Id).Where(id => id != learner));
        for (int i = 2; i <= 6; i++) await f.PutAsync("k", "v" + i);
        ClusterFixture.Eventually(() => node.GetNode(learner).LagEntries >= 5, $"learner {learner} knows it is 5 entries behind");
        ClusterFixture.Eventually(() => node.GetNode(learner).LagSeconds >= 0.5, $"learner {learner} has been behind for half a second");
        ClusterFixture.Eventually(() => f.Cluster.GetNodes().First(n => n.Id == learner).LagEntries >= 5, "the cluster's status shows the learner's lag");
        var refused = await Assert.ThrowsAsync<ReplicaTooStaleException>(() =>
            node.GetAsync("k", ReadConsistency.Stale, ClusterFixture.Bound, CancellationToken.None, maxLag: 2));
        Assert.Equal((learner, "ReplicaTooStale"), (refused.Node, refused.ErrorId));
        Assert.True(refused.LagEntries >= 5, $"lag {refused.LagEntries}");
        var old = await node.GetAsync("k", ReadConsistency.Stale, ClusterFixture.Bound, CancellationToken.None, maxLag: 1000);
        Assert.Equal(("v1", learner), (old!.Value, old.ReadFrom));

        node.Host.CutOff(Array.Empty<int>());
        ClusterFixture.Eventually(() => node.GetNode(learner) is { LagEntries: 0, LagSeconds: 0 }, $"learner {learner} caught up");
        ReplicationKey? fresh = null;
        await ClusterFixture.EventuallyAsync(async () => (fresh = await node.GetAsync("k", ReadConsistency.Stale, ClusterFixture.Bound, CancellationToken.None, maxLag: 0))?.Value == "v6",
            $"learner {learner} serves the last write", ClusterFixture.Bound);
        Assert.Equal(("v6", learner, 0L), (fresh!.Value, fresh.ReadFrom, fresh.LagEntries));
    }
}
