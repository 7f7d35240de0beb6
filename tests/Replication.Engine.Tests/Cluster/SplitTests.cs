using Replication.Engine.Cluster;
using Replication.Engine.Ring;
using Replication.Engine.Verification;
using Xunit;
using Xunit.Abstractions;

namespace Replication.Engine.Tests.Cluster;

/// <summary>Shards splitting while clients write and read (ClusterNode.Split.cs): nothing lost, versions kept, linearizable.</summary>
public sealed class SplitTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Bound = ClusterFixture.Bound;

    [Fact]
    public async Task A_split_under_concurrent_clients_loses_nothing_keeps_versions_and_stays_linearizable()
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 2);
        var c = f.Cluster;
        // A few hundred keys written before, each at version 2, to check they keep their value and version.
        var seeded = Enumerable.Range(0, 300).Select(i => $"seed-{i}").ToArray();
        foreach (var batch in seeded.Chunk(100))
            for (int round = 1; round <= 2; round++)
            {
                var results = await c.WriteAsync(batch.Select(k => new KeyWrite(k, $"{k}-{round}")).ToArray(), WriteConcern.Majority, Bound, CancellationToken.None);
                Assert.All(results, r => Assert.Null(r.Error));
            }
        var before = c.GetShards();

        // Clients on keys of both halves of shard 0 (and of shard 1).
        var halves = ShardRangeMap.Even(2).Split(0, 2);
        var keys = Enumerable.Range(0, 1000).Select(i => $"hot-{i}").GroupBy(halves.ShardFor).SelectMany(g => g.Take(3)).ToArray();
        Assert.Equal(9, keys.Length);
        var recorder = new HistoryRecorder();
        using var stop = new CancellationTokenSource();
        var clients = Enumerable.Range(0, 3).Select(i => Task.Run(() => recorder.ClientLoopAsync(c, i, keys, TimeSpan.FromSeconds(5), stop.Token))).ToArray();
        ClusterFixture.Eventually(() => recorder.Acknowledged >= 30, "clients made progress before the split");

        var split = await c.SplitShardAsync(0, Bound, CancellationToken.None);
        output.WriteLine($"split: {string.Join("; ", split.Select(s => $"{s.Id} [{s.HashStart:x16}, {s.HashEnd:x16}]"))}");
        Assert.Equal(new[] { 0, 2 }, split.Select(s => s.Id));
        Assert.Equal(before[0].HashStart, split[0].HashStart);
        Assert.Equal(before[0].HashEnd, split[1].HashEnd);
        Assert.Equal(split[0].HashEnd + 1, split[1].HashStart);
        int acknowledgedAtSplit = recorder.Acknowledged;
        ClusterFixture.Eventually(() => recorder.Acknowledged >= acknowledgedAtSplit + 30, "clients made progress after the split");

        var second = await c.SplitShardAsync(2, Bound, CancellationToken.None); // a split shard splits again
        Assert.Equal(new[] { 2, 3 }, second.Select(s => s.Id));
        int acknowledgedAtSecond = recorder.Acknowledged;
        ClusterFixture.Eventually(() => recorder.Acknowledged >= acknowledgedAtSecond + 30, "clients made progress after the second split");
        stop.Cancel();
        await Task.WhenAll(clients);

        // The map: four contiguous ranges covering every hash, each shard with three voters and the keys it should own.
        var shards = c.GetShards();
        Assert.Equal(new[] { 0, 1, 2, 3 }, shards.Select(s => s.Id));
        Assert.Equal(0UL, shards.Min(s => s.HashStart));
        Assert.Equal(ulong.MaxValue, shards.Max(s => s.HashEnd));
        var ordered = shards.OrderBy(s => s.HashStart).ToArray();
        for (int i = 1; i < ordered.Length; i++) Assert.Equal(ordered[i - 1].HashEnd + 1, ordered[i].HashStart);
        Assert.Equal(4, c.ShardCount);
        await c.WaitForLeadersAsync(null, Bound, CancellationToken.None);

        foreach (var key in seeded)
        {
            var got = await c.GetAsync(key, ReadConsistency.Linearizable, Bound, CancellationToken.None);
            Assert.NotNull(got);
            Assert.Equal($"{key}-2", got.Value);
            Assert.Equal(2, got.Version);
            ulong hash = KeyHash.Of(key);
            Assert.Equal(ordered.Single(s => s.HashStart <= hash && hash <= s.HashEnd).Id, got.Shard);
        }
        var scanned = new List<ReplicationKey>();
        await foreach (var k in c.ScanAsync("seed-", ReadConsistency.Linearizable, Bound, CancellationToken.None)) scanned.Add(k);
        Assert.Equal(seeded.Order(StringComparer.Ordinal), scanned.Select(k => k.Key));

        var verdict = await recorder.CheckAsync(c, Bound);
        output.WriteLine($"{recorder.History.Count} operations, {recorder.Acknowledged} acknowledged puts: {verdict.Outcome} ({verdict.Detail})");
        Assert.Equal(CheckOutcome.Linearizable, verdict.Outcome);
        var consistency = await c.CheckConsistencyAsync(null, Bound, CancellationToken.None);
        Assert.All(consistency, r => Assert.True(r.Consistent, $"shard {r.Shard}: {r}"));
    }

    [Fact]
    public async Task Splits_survive_a_restart_and_a_retried_split_answers_the_same_halves()
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 1);
        foreach (var i in Enumerable.Range(0, 50)) await f.PutAsync($"k{i}", $"v{i}");
        var split = await f.Cluster.SplitShardAsync(0, Bound, CancellationToken.None);
        Assert.Equal(2, f.Cluster.ShardCount);

        await f.ReopenAsync();
        var shards = f.Cluster.GetShards();
        Assert.Equal(new[] { 0, 1 }, shards.Select(s => s.Id));
        Assert.Equal(split.Select(s => (s.HashStart, s.HashEnd)), shards.Select(s => (s.HashStart, s.HashEnd)));
        foreach (var i in Enumerable.Range(0, 50))
            Assert.Equal($"v{i}", (await f.Cluster.GetAsync($"k{i}", ReadConsistency.Linearizable, Bound, CancellationToken.None))?.Value);
        Assert.Equal(50, shards.Sum(s => s.KeyCount));
        Assert.All(shards, s => Assert.True(s.KeyCount > 0, $"shard {s.Id} holds keys"));

        // A request that saw the shard before the split (a retry after a lost answer) gets the split that happened.
        var retried = await f.Cluster.AdminAsync<SplitAnswer>(AdminOps.ShardSplit, 0, new SplitArgs(0, 10_000, 0, ulong.MaxValue), Bound, CancellationToken.None);
        Assert.Equal((0, 1), (retried.Answer.Shard, retried.Answer.NewShard));
        Assert.Equal(2, f.Cluster.GetShards().Count);
        await Assert.ThrowsAsync<ShardNotFoundException>(() => f.Cluster.SplitShardAsync(7, Bound, CancellationToken.None));
    }

    [Fact]
    public async Task A_replica_that_missed_the_split_entry_gets_the_new_shard_with_its_rows()
    {
        // Found by the simulator (mutant SplitGroupFoundedAtZero): a replica down during a split, whose shard then compacted
        // its log past the split entry, catches up from a snapshot of the left half and never applies the split; it then
        // hosts the new shard as an empty replica. The new shard's founding state (the rows moved to it) is in no log entry,
        // so its leader must send it a snapshot, not its log from index 1.
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 1,
            configure: o => o with { SnapshotEntries = 40, SnapshotCatchUpEntries = 5 });
        await SplitWhileNode3IsDownAsync(f);
        var expected = f.Cluster.Node(f.LeaderOf(1))!.Host.Store.Scan(1, "").Select(k => $"{k.Key}={k.Value}@{k.Version}").ToList();
        Assert.NotEmpty(expected);
        Assert.Equal(expected, f.Cluster.Node(3)!.Host.Store.Scan(1, "").Select(k => $"{k.Key}={k.Value}@{k.Version}").ToList());
        var consistency = await f.Cluster.CheckConsistencyAsync(null, Bound, CancellationToken.None);
        Assert.All(consistency, r => Assert.True(r.Consistent, $"shard {r.Shard}: {r}"));
    }

    [Fact]
    public async Task A_replica_that_catches_up_by_snapshot_past_a_split_keeps_the_ranges_and_refuses_old_map_writes()
    {
        // A Raft snapshot carried no range: a replica that missed the split entry and caught up by snapshot (one
        // transaction for the old shard, a batched install for the new one) owned every key of both shards again, so an
        // old-map write for the half split off, refused at apply by the other replicas (WrongShard), was applied there.
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 1,
            configure: o => o with { SnapshotEntries = 40, SnapshotCatchUpEntries = 5 });
        var (left, right) = await SplitWhileNode3IsDownAsync(f);
        string KeyIn(ReplicationShard half, string prefix) => Enumerable.Range(0, 10_000).Select(i => $"{prefix}{i}")
            .First(k => Replication.Engine.Ring.KeyHash.Of(k) >= half.HashStart && Replication.Engine.Ring.KeyHash.Of(k) <= half.HashEnd);

        foreach (int n in new[] { 1, 2, 3 })
        {
            var store = f.Cluster.Node(n)!.Host.Store;
            Assert.Equal((left.HashStart, left.HashEnd), store.RangeOf(0));
            Assert.Equal((right.HashStart, right.HashEnd), store.RangeOf(1));
        }

        // An old-map write for the right half, proposed through shard 0 (a client that routed with the map before the
        // split): refused at apply on every replica, applied on none.
        string stray = KeyIn(right, "stray");
        var leader = f.Cluster.Node(f.LeaderOf(0))!.Host;
        var outcome = (await leader.ProposeAsync(0, new[] { Replication.Engine.Storage.KvCommand.Encode([new(Replication.Engine.Storage.KvOpType.Put, stray, "old-map", null)]) },
            WriteConcern.Majority)).Single();
        Assert.False(outcome.Results!.Single().Applied);
        ClusterFixture.Eventually(() => new[] { 1, 2, 3 }.All(n => f.Cluster.Node(n)!.Host.Status[0].Applied >= outcome.Index),
            "every replica of shard 0 applied the old-map write's entry");
        Assert.All(new[] { 1, 2, 3 }, n => Assert.Null(f.Cluster.Node(n)!.Host.Store.Get(0, stray)));
        var consistency = await f.Cluster.CheckConsistencyAsync(null, Bound, CancellationToken.None);
        Assert.All(consistency, r => Assert.True(r.Consistent, $"shard {r.Shard}: {r}"));
    }

    [Fact]
    public async Task A_node_that_holds_the_new_shard_and_then_replays_the_old_shards_log_through_the_split_stays_consistent()
    {
        // Found in an operator try (process mode, stop 32): split shard 0 into 0 and 4, add node 4 (it took a replica of
        // shard 4, by snapshot), remove node 1 (node 4 took shard 0 by replaying its log from index 1, split entry
        // included). The split did not apply on node 4, because its store already knew shard 4's range (a node-wide fact,
        // not shard 0's state): shard 0 kept the right half's rows there and owned every key, so Test-ReplicationConsistency
        // found shard 0 divergent, and an old-map write for the right half would have been applied on node 4 alone.
        await using var f = await ClusterFixture.StartAsync(nodes: 4, shards: 1,
            configure: o => o with { SnapshotEntries = 100_000, SnapshotCatchUpEntries = 100_000 }); // node 4 replays, never a snapshot
        var c = f.Cluster;
        foreach (var i in Enumerable.Range(0, 60)) await f.PutAsync($"k{i}", $"v{i}");
        var before = c.GetShards().Single();
        int outsider = new[] { 1, 2, 3, 4 }.Except(before.Voters).Single();
        var halves = await c.SplitShardAsync(0, Bound, CancellationToken.None);
        var right = halves.Single(h => h.Id != 0);
        var target = before.Voters.Skip(1).Append(outsider).Order().ToArray(); // the first voter makes room for the outsider

        // The new shard reaches the outsider first (by snapshot: its log starts after its founding state), the old one after.
        await c.PinShardAsync(right.Id, target, Bound, CancellationToken.None);
        await c.WaitForPlacementAsync(null, TimeSpan.FromSeconds(60), CancellationToken.None);
        Assert.Contains(outsider, c.GetShards().Single(s => s.Id == right.Id).Voters);
        Assert.Equal((right.HashStart, right.HashEnd), c.Node(outsider)!.Host.Store.RangeOf(right.Id));
        await c.PinShardAsync(0, target, Bound, CancellationToken.None);
        await c.WaitForPlacementAsync(null, TimeSpan.FromSeconds(60), CancellationToken.None);
        ClusterFixture.Eventually(() => c.Node(outsider)!.Host.Status.TryGetValue(0, out var st) && st.Applied >= f.Cluster.Node(f.LeaderOf(0))!.Host.Status[0].Committed,
            "the outsider replayed shard 0's log past the split");
        Assert.Equal(0, c.Node(outsider)!.Host.Status[0].SnapshotIndex); // it replayed the log, split entry included

        var left = halves.Single(h => h.Id == 0);
        Assert.Equal((left.HashStart, left.HashEnd), c.Node(outsider)!.Host.Store.RangeOf(0));
        var expected = c.Node(f.LeaderOf(0))!.Host.Store.Scan(0, "").Select(k => $"{k.Key}={k.Value}@{k.Version}").ToList();
        Assert.Equal(expected, c.Node(outsider)!.Host.Store.Scan(0, "").Select(k => $"{k.Key}={k.Value}@{k.Version}").ToList());
        var consistency = await c.CheckConsistencyAsync(null, Bound, CancellationToken.None);
        Assert.All(consistency, r => Assert.True(r.Consistent, $"shard {r.Shard}: {r}"));
        foreach (var i in Enumerable.Range(0, 60))
            Assert.Equal($"v{i}", (await c.GetAsync($"k{i}", ReadConsistency.Linearizable, Bound, CancellationToken.None))?.Value);
    }

    [Fact]
    public async Task A_node_that_replays_a_split_it_was_no_replica_at_can_take_the_new_shard_later()
    {
        // Found in an operator try (stop 32: automatic splits, a node added, a node removed, which never finished): a node
        // that joined the old shard after the split replayed its log through the split entry and created the new shard's
        // group there, as a founding replica with the id of its replica of the old shard, though it was none of the new
        // shard's replicas. It dropped that replica at once (not placed there) and kept its id as a tombstone; when the ring
        // later placed the new shard on that node, the metadata gave it the same id, the node refused it ("a removed
        // replica never comes back"), and the move waited forever for a learner that never caught up.
        await using var f = await ClusterFixture.StartAsync(nodes: 4, shards: 1,
            configure: o => o with { SnapshotEntries = 100_000, SnapshotCatchUpEntries = 100_000 }); // the old shard's log is replayed
        var c = f.Cluster;
        foreach (var i in Enumerable.Range(0, 60)) await f.PutAsync($"k{i}", $"v{i}");
        var before = c.GetShards().Single();
        int outsider = new[] { 1, 2, 3, 4 }.Except(before.Voters).Single();
        var halves = await c.SplitShardAsync(0, Bound, CancellationToken.None);
        int newShard = halves.Single(h => h.Id != 0).Id;
        var original = before.Voters.Order().ToArray();
        var withOutsider = before.Voters.Skip(1).Append(outsider).Order().ToArray(); // the first voter makes room for the outsider

        await c.PinShardAsync(newShard, original, Bound, CancellationToken.None); // the new shard stays off the outsider
        await c.WaitForPlacementAsync(null, TimeSpan.FromSeconds(60), CancellationToken.None);
        await c.PinShardAsync(0, withOutsider, Bound, CancellationToken.None);
        await c.WaitForPlacementAsync(null, TimeSpan.FromSeconds(60), CancellationToken.None);
        ClusterFixture.Eventually(() => c.Node(outsider)!.Host.Status.TryGetValue(0, out var st) && st.Applied >= c.Node(f.LeaderOf(0))!.Host.Status[0].Committed,
            "the outsider replayed the old shard's log past the split");
        Assert.Equal(0, c.Node(outsider)!.Host.Status[0].SnapshotIndex); // by its log, split entry included
        Assert.False(c.Node(outsider)!.Host.Status.ContainsKey(newShard), "no replica of the new shard on a node that was none at the split");
        Assert.Equal(0, c.Node(outsider)!.Host.Store.Count(newShard));

        await c.PinShardAsync(newShard, withOutsider, Bound, CancellationToken.None);
        await c.WaitForPlacementAsync(null, TimeSpan.FromSeconds(60), CancellationToken.None);
        Assert.Equal(withOutsider, c.GetShards().Single(s => s.Id == newShard).Voters.Order());
        var expected = c.Node(f.LeaderOf(newShard))!.Host.Store.Scan(newShard, "").Select(k => $"{k.Key}={k.Value}@{k.Version}").ToList();
        Assert.NotEmpty(expected);
        ClusterFixture.Eventually(() => expected.SequenceEqual(c.Node(outsider)!.Host.Store.Scan(newShard, "").Select(k => $"{k.Key}={k.Value}@{k.Version}")),
            "the outsider holds the new shard's rows");
        var consistency = await c.CheckConsistencyAsync(null, Bound, CancellationToken.None);
        Assert.All(consistency, r => Assert.True(r.Consistent, $"shard {r.Shard}: {r}"));
    }

    /// <summary>
    /// Shard 0 of a one-shard cluster (a snapshot every 40 entries) split while node 3 is down, then written on its left
    /// half until nodes 1 and 2 compacted its log past the split entry; node 3 started again and caught up, so it took
    /// shard 0 from a snapshot past the split and never applied the split entry. Returns the two halves.
    /// </summary>
    private static async Task<(ReplicationShard Left, ReplicationShard Right)> SplitWhileNode3IsDownAsync(ClusterFixture f)
    {
        foreach (var i in Enumerable.Range(0, 60)) await f.PutAsync($"k{i}", $"v{i}");
        await f.Cluster.StopNodeAsync(3, kill: true, CancellationToken.None);
        var halves = await f.Cluster.SplitShardAsync(0, Bound, CancellationToken.None);
        var left = halves.Single(h => h.Id == 0);
        long splitIndex = f.Cluster.Node(f.LeaderOf(0))!.Host.Status[0].Committed;
        // Writes to the left half only: its log compacts past the split, the new shard's stays short (not compacted).
        int written = 0;
        for (int i = 0; written < 120; i++)
        {
            ulong h = Replication.Engine.Ring.KeyHash.Of($"left{i}");
            if (h < left.HashStart || h > left.HashEnd) continue;
            await f.PutAsync($"left{i}", "x");
            written++;
        }
        f.WaitUntilQueuedAppendsAreDropped(0); // else node 3 may catch up from appends queued for it, split entry included
        ClusterFixture.Eventually(() => new[] { 1, 2 }.All(n => f.Cluster.Node(n)!.Host.Status[0].SnapshotIndex > splitIndex),
            "shard 0 compacted its log past the split on nodes 1 and 2");

        await f.Cluster.StartNodeAsync(3, CancellationToken.None);
        ClusterFixture.Eventually(() => f.Cluster.Node(3)?.Host.Status.TryGetValue(1, out var st) == true && st.Applied > 0
                && f.Cluster.GetNodes().All(n => n.State == NodeState.Running && n.LagEntries == 0),
            "node 3 hosts the new shard and caught up");
        return (left, halves.Single(h => h.Id == 1));
    }

    [Fact]
    public async Task A_shard_past_the_key_threshold_splits_by_itself()
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 1,
            configure: o => o with { Settings = new ClusterSettings { SplitKeys = 100 } });
        var writes = Enumerable.Range(0, 400).Select(i => new KeyWrite($"auto-{i}", "v")).ToArray();
        foreach (var batch in writes.Chunk(100))
            Assert.All(await f.Cluster.WriteAsync(batch, WriteConcern.Majority, Bound, CancellationToken.None), r => Assert.Null(r.Error));
        // 400 keys over a threshold of 100: splits until every shard is at or below it (at least four shards).
        // (Key counts come from each leader's status, refreshed a few times a second: wait for the sum to settle too.)
        IReadOnlyList<ReplicationShard> shards = [];
        ClusterFixture.Eventually(() => (shards = f.Cluster.GetShards()).Count >= 4 && shards.All(x => x.KeyCount <= 100 && x.Leader != 0) && shards.Sum(x => x.KeyCount) == 400,
            "the shard split by itself until every shard holds at most 100 keys");
        output.WriteLine(string.Join("\n", shards.Select(s => $"shard {s.Id}: {s.KeyCount} keys [{s.HashStart:x16}, {s.HashEnd:x16}]")));
        int found = 0;
        await foreach (var _ in f.Cluster.ScanAsync("auto-", ReadConsistency.Linearizable, Bound, CancellationToken.None)) found++;
        Assert.Equal(400, found);
    }

    [Fact]
    public void Settings_out_of_range_are_refused()
    {
        Assert.Equal(ClusterOptionsException.Invalid, Assert.Throws<ClusterOptionsException>(() => new ClusterSettings { SplitKeys = -1 }.Validate()).ErrorId);
        Assert.Equal(ClusterOptionsException.Invalid, Assert.Throws<ClusterOptionsException>(() => new ClusterSettings { SplitWriteRate = double.NaN }.Validate()).ErrorId);
        Assert.Equal(ClusterOptionsException.Invalid, Assert.Throws<ClusterOptionsException>(() => new ClusterSettings { MaxConcurrentMoves = 0 }.Validate()).ErrorId);
        Assert.Equal(ClusterOptionsException.Invalid, Assert.Throws<ClusterOptionsException>(() => new ClusterSettings { TokensPerNode = 0 }.Validate()).ErrorId);
    }
}
