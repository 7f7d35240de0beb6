using Replication.Engine.Cluster;
using Xunit;

namespace Replication.Engine.Tests.Cluster;

/// <summary>Suspend and resume (ClusterNode.Maintenance.cs): a suspended node hands its leaderships away and does not
/// campaign, but still votes and replicates; the mark lives in the replicated metadata.</summary>
public class MaintenanceTests
{
    [Fact]
    public async Task A_drained_node_leads_nothing_never_takes_over_while_suspended_and_may_lead_again_once_resumed()
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 3);
        int x = f.LeaderOf(0);
        var node = await f.Cluster.SetNodeSuspendedAsync(x, suspended: true, drain: true, ClusterFixture.Bound, CancellationToken.None);
        Assert.True(node.Suspended);
        Assert.DoesNotContain(f.Cluster.GetShards(), s => s.Leader == x);

        // It still replicates: a write is applied on every replica, the suspended one included.
        await f.PutAsync("during-maintenance", "v");
        ClusterFixture.Eventually(() => f.Cluster.Node(x)!.Host.Status.Values.All(st => st.Applied >= st.Committed && st.Committed > 0), "the suspended node applies what is committed");

        // The leader of shard 0 stops: of the two voters left, only the one not suspended may take over.
        int leader = f.LeaderOf(0);
        int other = new[] { 1, 2, 3 }.Single(n => n != x && n != leader);
        await f.Cluster.StopNodeAsync(leader, kill: true, CancellationToken.None);
        ClusterFixture.Eventually(() => f.Cluster.GetShards()[0].Leader == other, $"node {other} (not the suspended node {x}) leads shard 0");
        Assert.Equal(0, f.Cluster.GetShards().Count(s => s.Leader == x));
        await f.Cluster.StartNodeAsync(leader, CancellationToken.None);

        var resumed = await f.Cluster.SetNodeSuspendedAsync(x, suspended: false, drain: false, ClusterFixture.Bound, CancellationToken.None);
        Assert.False(resumed.Suspended);
        // Once resumed it may lead again: a switchover to it succeeds.
        var back = await f.Cluster.FailoverAsync(0, x, ClusterFixture.Bound, CancellationToken.None);
        Assert.Equal(x, back.NewLeader);

        var events = await f.Cluster.GetEventsAsync(null, new[] { ReplicationEventType.NodeSuspended, ReplicationEventType.NodeResumed }, Array.Empty<int>(), new[] { x }, null, ClusterFixture.Bound, CancellationToken.None);
        Assert.Equal(new[] { ReplicationEventType.NodeSuspended, ReplicationEventType.NodeResumed }, events.Events.Select(e => e.Type));
    }

    [Fact]
    public async Task A_switchover_never_chooses_a_suspended_node_and_the_mark_survives_a_restart()
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 1);
        int leader = f.LeaderOf(0);
        int suspended = new[] { 1, 2, 3 }.First(n => n != leader);
        await f.Cluster.SetNodeSuspendedAsync(suspended, suspended: true, drain: true, ClusterFixture.Bound, CancellationToken.None);
        var moved = await f.Cluster.FailoverAsync(0, null, ClusterFixture.Bound, CancellationToken.None);
        Assert.NotEqual(suspended, moved.NewLeader);

        await f.ReopenAsync();
        ClusterFixture.Eventually(() => f.Cluster.GetNodes().Single(n => n.Id == suspended).Suspended, "the node is still suspended after the restart");
        ClusterFixture.Eventually(() => f.Cluster.GetShards()[0].Leader is var l && l != 0 && l != suspended, "shard 0 is led by a node that is not suspended");
    }
}
