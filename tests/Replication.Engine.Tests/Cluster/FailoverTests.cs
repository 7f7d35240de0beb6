using Replication.Engine.Cluster;
using Xunit;

namespace Replication.Engine.Tests.Cluster;

/// <summary>Planned switchover (ClusterNode.Failover.cs): leadership moves by transfer, under writes, losing nothing.</summary>
public class FailoverTests
{
    [Fact]
    public async Task An_All_write_whose_leader_steps_down_while_it_waits_is_acknowledged_once_every_voter_applied_it()
    {
        // Bug fixed (the WriteConcern.All write of the ClusterClientTests fuzz timed out under load, where leaders change): only
        // a leader tracks how far its followers applied, so an All write whose leader stepped down while it waited for them
        // waited out its whole timeout, committed though it was. Now the node that has it reads the voters' own status reports.
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 1);
        int leader = f.LeaderOf(0);
        var others = new[] { 1, 2, 3 }.Where(n => n != leader).ToArray();
        int lagging = others[0], target = others[1];
        f.Cluster.Node(lagging)!.Host.CutOff(new[] { 1, 2, 3 }.Where(n => n != lagging));
        long before = f.Cluster.Node(target)!.Host.Status[0].Applied;
        var write = f.Cluster.Node(leader)!.WriteAsync(new[] { new KeyWrite("all", "x") }, WriteConcern.All, TimeSpan.FromSeconds(90), CancellationToken.None);
        ClusterFixture.Eventually(() => f.Cluster.Node(target)!.Host.Status[0].Applied > before, "the write committed and applied on the leader's majority");
        Assert.False(write.IsCompleted); // node `lagging` has not applied it

        var moved = await f.Cluster.FailoverAsync(0, target, ClusterFixture.Bound, CancellationToken.None);
        Assert.Equal(target, moved.NewLeader);
        Assert.False(write.IsCompleted);
        f.Cluster.Node(lagging)!.Host.CutOff(Array.Empty<int>());
        var result = (await write.WaitAsync(ClusterFixture.Bound))[0];
        Assert.Null(result.Error);
        Assert.True(f.Cluster.Node(lagging)!.Host.Status[0].Applied >= result.Record!.Index);
    }

    [Fact]
    public async Task A_switchover_under_a_stream_of_writes_moves_leadership_and_loses_no_acknowledged_write()
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 1);
        int old = f.LeaderOf(0);
        int target = new[] { 1, 2, 3 }.First(n => n != old);
        var acknowledged = new System.Collections.Concurrent.ConcurrentBag<string>();
        using var stop = new CancellationTokenSource();
        var writer = Task.Run(async () =>
        {
            for (int i = 0; i < 5000 && !stop.IsCancellationRequested; i++)
            {
                var r = (await f.Cluster.WriteAsync(new[] { new KeyWrite($"k{i}", $"v{i}", null) }, WriteConcern.Majority, ClusterFixture.Bound, CancellationToken.None))[0];
                if (r.Error is null) acknowledged.Add($"k{i}");
            }
        });
        ClusterFixture.Eventually(() => acknowledged.Count >= 20 || writer.IsCompleted, "some writes acknowledged before the switchover");
        var result = await f.Cluster.FailoverAsync(0, target, ClusterFixture.Bound, CancellationToken.None);
        ClusterFixture.Eventually(() => acknowledged.Count >= 40 || writer.IsCompleted, "writes go on after the switchover");
        stop.Cancel();
        await writer;

        // OldLeader is whoever led when the transfer began (the leader balancer may have moved it since `old` was read).
        Assert.Equal((target, FailoverKind.Planned, (long?)0), (result.NewLeader, result.Kind, result.LostEntries));
        Assert.NotEqual(target, result.OldLeader);
        Assert.True(result.Term > 0 && result.Duration > TimeSpan.Zero);
        Assert.Equal("test", result.Cluster);
        foreach (string key in acknowledged)
            Assert.NotNull(await f.Cluster.GetAsync(key, ReadConsistency.Linearizable, ClusterFixture.Bound, CancellationToken.None));
        var events = await f.Cluster.GetEventsAsync(null, new[] { ReplicationEventType.Switchover }, new[] { 0 }, Array.Empty<int>(), null, ClusterFixture.Bound, CancellationToken.None);
        Assert.Contains(events.Events, e => e.Node == result.OldLeader && e.Message.Contains($"to node {target}"));
        // The new leader recorded its election in that term (normally "leadership transferred by" the old one; on a loaded
        // machine an election timeout may win the race with the transfer's TimeoutNow).
        var elected = await f.Cluster.GetEventsAsync(null, new[] { ReplicationEventType.LeaderElected }, new[] { 0 }, new[] { target }, null, ClusterFixture.Bound, CancellationToken.None);
        Assert.Contains(elected.Events, e => e.Term == result.Term);
    }

    [Fact]
    public async Task Without_a_target_the_best_running_voter_takes_over_and_bad_targets_are_refused()
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 1);
        var result = await f.Cluster.FailoverAsync(0, null, ClusterFixture.Bound, CancellationToken.None);
        Assert.NotEqual(result.OldLeader, result.NewLeader);
        Assert.NotEqual(0, result.NewLeader);
        // The shard view shows the new leader as soon as the failover returns (it showed none for up to a status period).
        Assert.Equal(result.NewLeader, f.Cluster.GetShards().Single(s => s.Id == 0).Leader);

        // The target already leads: nothing moves.
        int current = f.LeaderOf(0);
        var again = await f.Cluster.FailoverAsync(0, current, ClusterFixture.Bound, CancellationToken.None);
        Assert.Equal((current, current, TimeSpan.Zero), (again.OldLeader, again.NewLeader, again.Duration));

        // A stopped voter cannot take over.
        int down = new[] { 1, 2, 3 }.First(n => n != current);
        await f.Cluster.StopNodeAsync(down, kill: false, CancellationToken.None);
        ClusterFixture.Eventually(() => f.Cluster.GetNodes().Single(n => n.Id == down).State != NodeState.Running, "the stopped node shows stopped");
        var refused = await Assert.ThrowsAnyAsync<ReplicationException>(() => f.Cluster.FailoverAsync(0, down, TimeSpan.FromSeconds(5), CancellationToken.None));
        Assert.Equal(ClusterNode.FailoverTargetInvalid, refused.ErrorId);
        await Assert.ThrowsAsync<NodeNotFoundException>(() => f.Cluster.FailoverAsync(0, 9, TimeSpan.FromSeconds(5), CancellationToken.None));
        await Assert.ThrowsAsync<ShardNotFoundException>(() => f.Cluster.FailoverAsync(7, null, TimeSpan.FromSeconds(5), CancellationToken.None));
    }
}
