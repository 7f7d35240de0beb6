using Replication.Engine.Cluster;
using Xunit;

namespace Replication.Engine.Tests.Cluster;

/// <summary>The event history (ClusterNode.Events.cs) as an operator reads it: gathered from every node, merged by
/// time, with elections and their reasons, node starts and stops, and kept across restarts.</summary>
public class EventTests
{
    private static readonly ReplicationEventType[] AllTypes = Array.Empty<ReplicationEventType>();

    private static async Task<EventHistory> Events(IReplicationCluster cluster, ReplicationEventType[]? types = null, int[]? shards = null, int[]? nodes = null, int? last = null) =>
        await cluster.GetEventsAsync(null, types ?? AllTypes, shards ?? Array.Empty<int>(), nodes ?? Array.Empty<int>(), last, ClusterFixture.Bound, CancellationToken.None);

    [Fact]
    public async Task Elections_starts_and_stops_are_recorded_with_reasons_and_survive_a_restart()
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 2);
        var history = await Events(f.Cluster);
        Assert.Empty(history.Unread);
        Assert.Equal(new[] { 1, 2, 3 }, history.Events.Where(e => e.Type == ReplicationEventType.NodeStarted).Select(e => e.Node).Distinct().Order());
        Assert.All(history.Events, e => Assert.Equal("test", e.Cluster));
        Assert.Equal(history.Events.OrderBy(e => e.Time).Select(e => (e.Node, e.Sequence)), history.Events.Select(e => (e.Node, e.Sequence)));
        // Every shard's current leader recorded winning its election, with a term and a reason.
        foreach (var shard in f.Cluster.GetShards())
        {
            var won = history.Events.Last(e => e.Type == ReplicationEventType.LeaderElected && e.Shard == shard.Id);
            Assert.True(won.Term > 0);
            Assert.Contains("became leader", won.Message);
        }

        // A clean stop of a leader: another node wins because it lost its leader; the stopped node's own history says
        // it stopped cleanly, which its next start reports.
        int leader = f.LeaderOf(0);
        var before = DateTimeOffset.UtcNow;
        await f.Cluster.StopNodeAsync(leader, kill: false, CancellationToken.None);
        ClusterFixture.Eventually(() => f.Cluster.GetShards()[0].Leader is not 0 and var l && l != leader, "shard 0 has a new leader");
        var after = await Events(f.Cluster, new[] { ReplicationEventType.LeaderElected }, new[] { 0 });
        Assert.Contains(after.Events, e => e.Time >= before && e.Node != leader && e.Message.Contains("became leader"));
        Assert.Contains(after.Unread, u => u.Node == leader);
        await f.Cluster.StartNodeAsync(leader, CancellationToken.None);
        var own = await Events(f.Cluster, nodes: new[] { leader });
        Assert.Equal(ReplicationEventType.NodeStopped, own.Events[^2].Type);
        Assert.Equal(ReplicationEventType.NodeStarted, own.Events[^1].Type);
        Assert.Contains("after a clean stop", own.Events[^1].Message);

        // A kill leaves no NodeStopped: the next start says the stop before it was not clean.
        await f.Cluster.StopNodeAsync(leader, kill: true, CancellationToken.None);
        await f.Cluster.StartNodeAsync(leader, CancellationToken.None);
        var killed = await Events(f.Cluster, new[] { ReplicationEventType.NodeStarted, ReplicationEventType.NodeStopped }, nodes: new[] { leader }, last: 1);
        Assert.Contains("unclean stop", Assert.Single(killed.Events).Message);

        // The whole cluster restarted: the history is still there.
        int count = (await Events(f.Cluster)).Events.Count;
        await f.ReopenAsync();
        var reopened = await Events(f.Cluster);
        Assert.True(reopened.Events.Count > count, $"{reopened.Events.Count} events after the restart, {count} before");
    }

    [Fact]
    public async Task RecordEvent_is_one_call_for_other_engine_code_and_a_check_quorum_step_down_is_recorded()
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 1);
        var node = f.Cluster.Node(1)!;
        node.RecordEvent(ReplicationEventType.Switchover, "test switchover", shard: 0);
        var recorded = Assert.Single((await Events(f.Cluster, new[] { ReplicationEventType.Switchover })).Events);
        Assert.Equal((1, 0), (recorded.Node, recorded.Shard!.Value));
        Assert.Equal(f.Cluster.GetShards()[0].Term, recorded.Term);

        // The leader loses both followers: check-quorum makes it step down, and it says so. They die as a crash does, unseen:
        // stopped on the node itself, not through the embedded cluster, which would tell their siblings at once (those then
        // show them Stopped, not Unreachable, and record no NodeUnreachable: the event below came only when a status poll
        // happened to fail before that word arrived, one run in a few under load).
        int leader = f.LeaderOf(0);
        foreach (int other in new[] { 1, 2, 3 }.Where(n => n != leader))
            await f.Cluster.Node(other)!.StopAsync(kill: true);
        EventHistory lost = null!;
        ClusterFixture.Eventually(() =>
        {
            lost = Events(f.Cluster, new[] { ReplicationEventType.LeaderLost }, nodes: new[] { leader }).GetAwaiter().GetResult();
            return lost.Events.Any(e => e.Shard == 0 && e.Message.Contains("check-quorum"));
        }, "the leader records its check-quorum step-down");
        // A peer is found unreachable by its next failed status poll (up to a status period plus the poll timeout), which
        // may come after the check-quorum step-down: wait for it with the bound.
        EventHistory unreachable = null!;
        ClusterFixture.Eventually(() =>
        {
            unreachable = Events(f.Cluster, new[] { ReplicationEventType.NodeUnreachable }, nodes: new[] { leader }).GetAwaiter().GetResult();
            return unreachable.Events.Count > 0;
        }, "the leader records its peers unreachable");
        Assert.NotEmpty(unreachable.Events);
    }
}
