using Replication.Engine.Cluster;
using Replication.Engine.Ring;
using Replication.Engine.Storage;
using Replication.Engine.Verification;
using Xunit;
using Xunit.Abstractions;

namespace Replication.Engine.Tests.Cluster;

/// <summary>The ring in a running cluster (ClusterNode.Placement.cs, PlacementPolicy): nodes joining and leaving under
/// writes, moves bounded and resumed, leaderships balanced, pins kept, removals refused when they would cost replicas.</summary>
public sealed class RingTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Bound = ClusterFixture.Bound;
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Growing_to_five_nodes_and_shrinking_back_under_writes_loses_nothing_and_balances_leaders()
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 8);
        var c = f.Cluster;
        await AssertLeadersBalancedAsync(c, 3);

        var recorder = new HistoryRecorder();
        using var stop = new CancellationTokenSource();
        var keys = Enumerable.Range(0, 24).Select(i => $"ring-{i}").ToArray();
        var clients = Enumerable.Range(0, 3).Select(i => Task.Run(() => recorder.ClientLoopAsync(c, i, keys, TimeSpan.FromSeconds(5), stop.Token))).ToArray();
        ClusterFixture.Eventually(() => recorder.Acknowledged >= 30, "clients made progress before the ring changed");

        var added = new List<int>();
        for (int i = 0; i < 2; i++) added.Add((await c.AddNodeAsync(zone: null, learner: false, CancellationToken.None)).Id);
        var moves = await c.GetMovesAsync(CancellationToken.None);
        output.WriteLine($"after adding {string.Join(",", added)}: {moves.Count} moves planned");
        await c.WaitForPlacementAsync(null, Settle, CancellationToken.None);
        var ring = await c.GetRingAsync(CancellationToken.None);
        foreach (var e in ring) output.WriteLine($"node {e.Node}: tokens {e.Tokens} share {e.Share:P1} held {e.ShardsHeld} placed {e.ShardsPlaced} led {e.ShardsLed}");
        Assert.Equal(5, ring.Count);
        Assert.All(added, id => Assert.True(ring.Single(e => e.Node == id).ShardsHeld > 0, $"node {id} received replicas"));
        Assert.All(c.GetShards(), s => Assert.Equal(3, s.Voters.Count));
        Assert.Equal(8 * 3, ring.Sum(e => e.ShardsHeld));
        await AssertLeadersBalancedAsync(c, 5);
        int acknowledgedGrown = recorder.Acknowledged;
        ClusterFixture.Eventually(() => recorder.Acknowledged >= acknowledgedGrown + 30, "clients made progress on five nodes");

        // Shrink back: the two original nodes 1 and 2 leave (one of them leads the metadata group).
        foreach (int id in new[] { 1, 2 }) await c.RemoveNodeAsync(id, force: false, Bound, CancellationToken.None);
        await c.WaitForPlacementAsync(null, Settle, CancellationToken.None);
        ClusterFixture.Eventually(() => c.GetNodes().Select(n => n.Id).Order().SequenceEqual(new[] { 3 }.Concat(added)), "the removed nodes are gone from the cluster");
        Assert.False(Directory.Exists(Path.Combine(c.Path!, "node-1")), "the removed node's folder is deleted");
        Assert.All(c.GetShards(), s => Assert.Equal(3, s.Voters.Count));
        Assert.All(c.GetShards(), s => Assert.DoesNotContain(1, s.Voters.Concat(s.Learners)));
        await AssertLeadersBalancedAsync(c, 3);
        var halves = await c.SplitShardAsync(0, Bound, CancellationToken.None); // the metadata group works on its new members
        Assert.Equal(0, halves[0].Id);
        Assert.Equal(9, c.GetShards().Count);
        int acknowledgedShrunk = recorder.Acknowledged;
        ClusterFixture.Eventually(() => recorder.Acknowledged >= acknowledgedShrunk + 30, "clients made progress after the shrink");
        stop.Cancel();
        await Task.WhenAll(clients);

        var verdict = await recorder.CheckAsync(c, Bound);
        output.WriteLine($"{recorder.History.Count} operations, {recorder.Acknowledged} acknowledged puts: {verdict.Outcome} ({verdict.Detail})");
        Assert.Equal(CheckOutcome.Linearizable, verdict.Outcome);
        var consistency = await c.CheckConsistencyAsync(null, Bound, CancellationToken.None);
        Assert.All(consistency, r => Assert.True(r.Consistent, $"shard {r.Shard} replicas differ"));

        // Reopened, the three remaining nodes come back as they are.
        await f.ReopenAsync();
        Assert.Equal(new[] { 3 }.Concat(added), f.Cluster.GetNodes().Select(n => n.Id).Order());
    }

    [Fact]
    public async Task A_removal_that_would_cost_replicas_is_refused_and_a_pin_moves_a_replica_and_stays()
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 4);
        var c = f.Cluster;
        var refused = await Assert.ThrowsAsync<ReplicationFactorAtRiskException>(() => c.RemoveNodeAsync(2, force: false, Bound, CancellationToken.None));
        Assert.Equal("ReplicationFactorAtRisk", refused.ErrorId);
        // Nothing was stopped or drained. (Read as a condition: right after the start, under a loaded machine, a node's status
        // report can be late and the view shows it Unreachable for a moment; a full suite run saw that once.)
        ClusterFixture.Eventually(() => c.GetNodes().All(n => n.State == NodeState.Running && !n.Suspended), "every node still running after the refused removal");
        Assert.Empty(await c.GetMovesAsync(CancellationToken.None));

        var fourth = await c.AddNodeAsync(zone: "b", learner: false, CancellationToken.None);
        await c.WaitForPlacementAsync(null, Settle, CancellationToken.None);
        // Zones first: node 4 is the only node of zone "b", so every shard has a replica there.
        Assert.All(c.GetShards(), s => Assert.Contains(fourth.Id, s.Voters));
        var shard = c.GetShards().First();
        int missing = new[] { 1, 2, 3 }.Except(shard.Voters).Single();
        int from = shard.Voters.Where(v => v != fourth.Id).Min();
        var pinned = shard.Voters.Select(v => v == from ? missing : v).ToArray();
        await c.PinShardAsync(shard.Id, pinned, Bound, CancellationToken.None);
        await c.WaitForPlacementAsync(null, Settle, CancellationToken.None);
        var moved = c.GetShards().Single(s => s.Id == shard.Id);
        Assert.Equal(pinned.Order(), moved.Voters.Order());
        var ring = await c.GetRingAsync(CancellationToken.None);
        Assert.Equal("b", ring.Single(e => e.Node == fourth.Id).Zone);
        Assert.Empty(await c.GetMovesAsync(CancellationToken.None));
        await AssertLeadersBalancedAsync(c, 4);
    }

    [Theory]
    [InlineData(StoreLayout.FilePerNode)]
    [InlineData(StoreLayout.FilePerShard)] // splits found files, moves ship images of them, leaves delete them
    public async Task Nodes_joining_and_leaving_while_shards_split_by_themselves_lose_nothing(StoreLayout layout)
    {
        // Splits meet moves: with automatic splits (a shard past 100 keys splits) and keys added while each change's moves
        // run, nodes join and leave, so replicas copy shards that split meanwhile, and nodes that join a shard after it split replay
        // its log through the split entry. Both bugs stop 32 found in operator tries live here (a split skipped on a node
        // that held the new shard: divergent replicas; a replayed split that left a tombstone: a move that never finished).
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 2,
            configure: o => o with { Settings = new ClusterSettings { SplitKeys = 100 }, StoreLayout = layout });
        var c = f.Cluster;
        var expected = new Dictionary<string, string>();
        int filled = 0;
        // Filler keys in batches of 20, 300 at a time (1,500 in all): before the changes, and while each one's moves run.
        async Task FillAsync()
        {
            for (int b = 0; b < 15; b++, filled += 20)
            {
                var writes = Enumerable.Range(filled, 20).Select(i => new KeyWrite($"fill-{i}", $"f{i}", null)).ToArray();
                try
                {
                    var results = await c.WriteAsync(writes, WriteConcern.Majority, Bound, CancellationToken.None);
                    for (int i = 0; i < writes.Length; i++) if (results[i].Error is null) expected[writes[i].Key] = writes[i].Value!;
                }
                catch (ReplicationException) { } // outcome unknown: not expected
            }
        }
        await FillAsync();

        var recorder = new HistoryRecorder();
        using var stop = new CancellationTokenSource();
        var keys = Enumerable.Range(0, 16).Select(i => $"hist-{i}").ToArray();
        var clients = Enumerable.Range(0, 2).Select(i => Task.Run(() => recorder.ClientLoopAsync(c, i, keys, TimeSpan.FromSeconds(5), stop.Token))).ToList();

        var added = new List<int>();
        for (int i = 0; i < 2; i++)
        {
            added.Add((await c.AddNodeAsync(zone: null, learner: false, CancellationToken.None)).Id);
            await FillAsync();
            await c.WaitForPlacementAsync(null, Settle, CancellationToken.None);
        }
        foreach (int id in new[] { 1, 2 })
        {
            await c.RemoveNodeAsync(id, force: false, Bound, CancellationToken.None);
            await FillAsync();
            await c.WaitForPlacementAsync(null, Settle, CancellationToken.None);
        }
        stop.Cancel();
        await Task.WhenAll(clients);
        await c.WaitForPlacementAsync(null, Settle, CancellationToken.None);

        var shards = c.GetShards();
        output.WriteLine($"{shards.Count} shards after the changes; {expected.Count} filler keys written; {recorder.Acknowledged} acknowledged puts");
        Assert.True(shards.Count > 4, $"shards split by themselves ({shards.Count})");
        Assert.All(shards, s => Assert.Equal(new[] { 3 }.Concat(added).Order(), s.Voters.Order()));
        var verdict = await recorder.CheckAsync(c, Bound);
        Assert.Equal(CheckOutcome.Linearizable, verdict.Outcome);
        foreach (var (key, value) in expected)
            Assert.Equal(value, (await c.GetAsync(key, ReadConsistency.Linearizable, Bound, CancellationToken.None))?.Value);
        var consistency = await c.CheckConsistencyAsync(null, Bound, CancellationToken.None);
        Assert.All(consistency, r => Assert.True(r.Consistent, $"shard {r.Shard} replicas differ: {r}"));
        await AssertLeadersBalancedAsync(c, 3);
    }

    [Fact]
    public async Task A_wait_for_moves_that_times_out_names_the_moves_left()
    {
        // The timeout used to say "Shard 0 could not reach a quorum" whichever shard was stuck (an operator try at stop 32:
        // shard 3's learner never caught up, and the error sent the operator to shard 0).
        await using var f = await ClusterFixture.StartAsync(nodes: 4, shards: 2);
        var c = f.Cluster;
        // The ring's first placement over four nodes moves replicas right after the start: read the voters once it is done
        // (read earlier, the node stopped below could be the one a move was adding, and the pin then found it a voter).
        await c.WaitForPlacementAsync(null, Bound, CancellationToken.None);
        var shard = c.GetShards().Single(s => s.Id == 1);
        int down = new[] { 1, 2, 3, 4 }.Except(shard.Voters).Single();
        await c.StopNodeAsync(down, kill: false, CancellationToken.None);
        int from = shard.Voters.Max();
        await c.PinShardAsync(1, shard.Voters.Where(v => v != from).Append(down).ToArray(), Bound, CancellationToken.None);
        // A move onto a node that is down waits for it (copies go to running nodes only): the wait times out.
        var timedOut = await Assert.ThrowsAsync<QuorumUnavailableException>(() => c.WaitForPlacementAsync(null, TimeSpan.FromSeconds(2), CancellationToken.None));
        output.WriteLine(timedOut.Message);
        Assert.Equal(1, timedOut.Shard);
        Assert.StartsWith("The replicas did not settle within 2 s: 1 replica move(s) left (shard 1: ", timedOut.Message); // a learner there, not caught up
        Assert.Contains($" from node {from} to node {down})", timedOut.Message);
    }

    [Fact]
    public async Task After_a_node_is_replaced_every_shard_keeps_a_leader_and_a_split_works_at_once()
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 8, configure: o => o with { Seed = null });
        var c = f.Cluster;
        await c.AddNodeAsync(zone: null, learner: false, CancellationToken.None);
        await c.WaitForPlacementAsync(null, Settle, CancellationToken.None);
        await c.RemoveNodeAsync(1, force: false, Bound, CancellationToken.None);
        await c.WaitForPlacementAsync(null, Settle, CancellationToken.None);
        var halves = await c.SplitShardAsync(0, Bound, CancellationToken.None);
        Assert.Equal(0, halves[0].Id);
        Assert.True(halves[1].Id >= 8, $"the new shard has a new id ({halves[1].Id})");
        Assert.Equal(9, c.GetShards().Count);
        await c.WaitForLeadersAsync(null, Bound, CancellationToken.None);
        var put = await f.PutAsync("after-split", "x");
        Assert.Equal(1, put.Version);
        await AssertLeadersBalancedAsync(c, 3);
    }

    /// <summary>Within the bound, every running voter leads ⌊S/N⌋ or ⌈S/N⌉ shards.</summary>
    private async Task AssertLeadersBalancedAsync(EmbeddedCluster c, int nodes)
    {
        await c.WaitForLeadersAsync(null, Bound, CancellationToken.None);
        string last = "";
        bool balanced = SpinWait.SpinUntil(() =>
        {
            var shards = c.GetShards();
            if (shards.Any(s => s.Leader == 0)) return false;
            var led = c.GetNodes().Where(n => n.State == NodeState.Running).ToDictionary(n => n.Id, n => shards.Count(s => s.Leader == n.Id));
            last = string.Join(", ", led.OrderBy(x => x.Key).Select(x => $"{x.Key}:{x.Value}"));
            int floor = shards.Count / nodes, ceiling = (shards.Count + nodes - 1) / nodes;
            return led.Count == nodes && led.Values.All(v => v >= floor && v <= ceiling);
        }, Bound);
        output.WriteLine($"leaders per node: {last}");
        Assert.True(balanced, $"leaders not balanced within {Bound.TotalSeconds} s: {last}");
    }
}
