using Replication.Engine.Cluster;
using Replication.Engine.Raft;
using Xunit;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// Forced recovery after a permanent loss of quorum (ClusterNode.ForcedRecovery.cs, NodeHost.ForcedRecovery.cs): refused
/// while a quorum answers; after two of a shard's three voters are killed, the survivor becomes the only voter with its
/// data, leads, reports the loss window, and the shard grows back to three voters on live nodes once the lost ones are
/// removed; a survivor that crashes right after the rewrite comes back as the one-voter group. Five nodes, so the
/// metadata group (five voters) keeps its quorum.
/// </summary>
public class ForcedRecoveryTests
{
    [Fact]
    public async Task Refused_while_a_quorum_answers_then_the_survivor_leads_alone_and_the_shard_grows_back()
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 5, shards: 1);
        await f.Cluster.WaitForPlacementAsync(null, ClusterFixture.Bound, CancellationToken.None);
        for (int i = 0; i < 20; i++) await f.PutAsync($"k{i}", $"v{i}");

        var refused = await Assert.ThrowsAnyAsync<ReplicationException>(() => f.Cluster.ForceFailoverAsync(0, ClusterFixture.Bound, CancellationToken.None));
        Assert.Equal(ClusterNode.QuorumAvailable, refused.ErrorId);
        Assert.Equal(3, f.Cluster.GetShards().Single().Voters.Count); // nothing was forced

        var voters = f.Cluster.GetShards().Single().Voters.Order().ToArray();
        int survivor = voters[0];
        int[] lost = voters.Skip(1).ToArray();
        long committed = f.Cluster.Node(f.LeaderOf(0))!.Host.Status[0].Committed;
        ClusterFixture.Eventually(() => f.Cluster.Node(survivor)!.Host.Status[0].Applied >= committed, "the survivor has applied every write");
        foreach (int id in lost) await f.Cluster.StopNodeAsync(id, kill: true, CancellationToken.None);

        var result = await f.Cluster.ForceFailoverAsync(0, ClusterFixture.Bound, CancellationToken.None);
        Assert.Equal((survivor, FailoverKind.Forced, (long?)null), (result.NewLeader, result.Kind, result.LostEntries));
        Assert.True(result.SurvivorLastIndex >= committed, $"survivor's last index {result.SurvivorLastIndex} covers the commit index {committed}");
        Assert.True(result.SurvivorLastTerm > 0 && result.Term > result.SurvivorLastTerm);
        Assert.Contains($"after index {result.SurvivorLastIndex}", result.Detail);
        Assert.Equal(new[] { survivor }, f.Cluster.Node(survivor)!.Host.Status[0].Voters);
        for (int i = 0; i < 20; i++)
            Assert.Equal($"v{i}", (await f.Cluster.GetAsync($"k{i}", ReadConsistency.Linearizable, ClusterFixture.Bound, CancellationToken.None))!.Value);
        await f.PutAsync("after", "forced");

        var events = await f.Cluster.GetEventsAsync(null, new[] { ReplicationEventType.ForcedRecovery }, new[] { 0 }, Array.Empty<int>(), null, ClusterFixture.Bound, CancellationToken.None);
        Assert.Contains(events.Events, e => e.Node == survivor && e.Message.Contains($"up to index {result.SurvivorLastIndex}"));

        // Asked again, the one-voter group has its quorum.
        var again = await Assert.ThrowsAnyAsync<ReplicationException>(() => f.Cluster.ForceFailoverAsync(0, ClusterFixture.Bound, CancellationToken.None));
        Assert.Equal(ClusterNode.QuorumAvailable, again.ErrorId);

        // The operator removes the lost nodes; the ring places the shard on the live ones and it grows back to three voters.
        foreach (int id in lost) await f.Cluster.RemoveNodeAsync(id, force: true, ClusterFixture.Bound, CancellationToken.None);
        int[] live = new[] { 1, 2, 3, 4, 5 }.Except(lost).ToArray();
        ClusterFixture.Eventually(() => f.Cluster.GetShards().Single() is { Leader: not 0 } s && s.Voters.Count == 3 && s.Voters.All(live.Contains),
            "shard 0 has three voters again, all on live nodes", TimeSpan.FromSeconds(60));
        Assert.Equal("forced", (await f.Cluster.GetAsync("after", ReadConsistency.Linearizable, ClusterFixture.Bound, CancellationToken.None))!.Value);
    }

    [Fact]
    public async Task A_survivor_that_crashes_right_after_the_rewrite_comes_back_as_the_only_voter()
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 5, shards: 1);
        await f.Cluster.WaitForPlacementAsync(null, ClusterFixture.Bound, CancellationToken.None);
        for (int i = 0; i < 10; i++) await f.PutAsync($"k{i}", $"v{i}");
        var voters = f.Cluster.GetShards().Single().Voters.Order().ToArray();
        int survivor = voters[^1];
        long committed = f.Cluster.Node(f.LeaderOf(0))!.Host.Status[0].Committed;
        ClusterFixture.Eventually(() => f.Cluster.Node(survivor)!.Host.Status[0].Applied >= committed, "the survivor has applied every write");
        foreach (int id in voters.Where(v => v != survivor)) await f.Cluster.StopNodeAsync(id, kill: true, CancellationToken.None);
        ClusterFixture.Eventually(() => f.Cluster.Node(survivor)!.Host.Status[0].Role != RaftRole.Leader, "the survivor does not lead (check-quorum)");

        // The rewrite alone (what the survivor does first when asked), then a crash before it can campaign.
        var rewrite = await f.Cluster.Node(survivor)!.Host.ForceSoleVoterAsync(0, voters);
        await f.Cluster.StopNodeAsync(survivor, kill: true, CancellationToken.None);
        Assert.True(rewrite.LastIndex >= committed);
        Assert.Equal(voters, rewrite.FormerVoters);

        await f.Cluster.StartNodeAsync(survivor, CancellationToken.None);
        ClusterFixture.Eventually(() => f.Cluster.Node(survivor)?.Host.Status.TryGetValue(0, out var st) == true
            && st.Role == RaftRole.Leader && st.Voters.SequenceEqual(new[] { survivor }), "the restarted survivor leads shard 0 alone", TimeSpan.FromSeconds(30));
        for (int i = 0; i < 10; i++)
            Assert.Equal($"v{i}", (await f.Cluster.GetAsync($"k{i}", ReadConsistency.Linearizable, ClusterFixture.Bound, CancellationToken.None))!.Value);
        await f.PutAsync("after", "crash");
    }

    [Fact]
    public async Task Losing_most_of_the_metadata_voters_refuses_node_changes_with_MetadataQuorumLost_until_they_run_again()
    {
        // The metadata group cannot be recovered by force: a change it must record while most of its voters are down was
        // retried to its timeout (300 s for Remove-ReplicationNode) with "node 1 does not lead the metadata group"; it is
        // refused after a few seconds with a reason that names the down nodes, and works again once a majority runs.
        await using var f = await ClusterFixture.StartAsync(nodes: 5, shards: 1);
        foreach (int id in new[] { 3, 4, 5 }) await f.Cluster.StopNodeAsync(id, kill: true, CancellationToken.None);

        var refused = await Assert.ThrowsAnyAsync<ReplicationException>(() => f.Cluster.RemoveNodeAsync(5, force: true, TimeSpan.FromSeconds(120), CancellationToken.None));
        Assert.Equal(ClusterNode.MetadataQuorumLost, refused.ErrorId);
        Assert.Contains("nodes 3, 4, 5 are down", refused.Message);

        await f.Cluster.StartNodeAsync(3, CancellationToken.None);
        await f.Cluster.RemoveNodeAsync(5, force: true, ClusterFixture.Bound, CancellationToken.None);
    }
}
