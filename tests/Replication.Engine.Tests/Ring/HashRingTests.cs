using Replication.Engine.Ring;
using Xunit;

namespace Replication.Engine.Tests.Ring;

public sealed class HashRingTests
{
    private static readonly RingSettings Small = new() { TokensPerNode = 16 };
    // LoadBound large enough that no node ever fills: plain consistent hashing.
    private static readonly RingSettings Unbounded = new() { TokensPerNode = 16, LoadBound = 10 };

    [Fact]
    public void TokenPositionsArePinnedAndDistinct()
    {
        Assert.Equal(0xba3a9e160a5f1419UL, HashRing.TokenPosition(1, 0));
        Assert.Equal(0x1674bb9db9581fb9UL, HashRing.TokenPosition(7, 3));
        var ring = new HashRing(Nodes(50), new RingSettings { TokensPerNode = 64 });
        Assert.Equal(50 * 64, ring.Tokens.Select(t => t.Position).Distinct().Count());
        Assert.True(ring.Tokens.Zip(ring.Tokens.Skip(1)).All(p => p.First.Position < p.Second.Position));
    }

    [Fact]
    public void OwnerOfMatchesABruteForceScan()
    {
        var ring = new HashRing(Nodes(7), Small);
        var rng = new Random(2);
        var probes = ring.Tokens.SelectMany(t => new[] { t.Position, t.Position + 1, t.Position - 1 }).Append(0UL).Append(ulong.MaxValue).ToList();
        for (int i = 0; i < 1000; i++) probes.Add((ulong)rng.NextInt64() ^ ((ulong)rng.Next() << 63));
        foreach (ulong h in probes)
        {
            var atOrAfter = ring.Tokens.Where(t => t.Position >= h).ToList();
            int expected = atOrAfter.Count > 0 ? atOrAfter.MinBy(t => t.Position).Node : ring.Tokens.MinBy(t => t.Position).Node;
            Assert.Equal(expected, ring.OwnerOf(h));
        }
    }

    [Fact]
    public void UnboundedPlacementIsTheFirstDistinctNodesClockwise()
    {
        // With no node full, the placement is exactly the textbook walk, computed here by brute force.
        var nodes = Nodes(9);
        var ring = new HashRing(nodes, Unbounded);
        var map = ShardRangeMap.Even(64);
        foreach (var p in ring.Place(map))
        {
            ulong start = map.RangeOf(p.Shard).Start;
            var walk = ring.Tokens.Where(t => t.Position >= start).Concat(ring.Tokens.Where(t => t.Position < start))
                .Select(t => t.Node).Distinct().Take(3).ToArray();
            Assert.Equal(walk, p.Voters);
        }
    }

    [Fact]
    public void SameInputGivesTheSamePlacementWhateverTheNodeOrder()
    {
        var nodes = Nodes(20, zones: 3);
        var map = ShardRangeMap.Even(512);
        var a = new HashRing(nodes, Small).Place(map);
        var b = new HashRing(nodes.AsEnumerable().Reverse(), Small).Place(map);
        Assert.Equal(a.Select(p => string.Join(',', p.Voters)), b.Select(p => string.Join(',', p.Voters))); // order of voters too
    }

    [Fact]
    public void EveryShardGetsReplicationFactorDistinctNodesOrAllOfThemWhenFewer()
    {
        var map = ShardRangeMap.Even(100);
        foreach (var p in new HashRing(Nodes(5), Small).Place(map))
            Assert.Equal(3, p.Voters.Distinct().Count());
        foreach (var p in new HashRing(Nodes(2), Small).Place(map))
            Assert.Equal([1, 2], p.Voters.Order());
        Assert.All(new HashRing([], Small).Place(map), p => Assert.Empty(p.Voters));
    }

    [Fact]
    public void NoShardHasTwoReplicasInOneZoneWhileThereAreEnoughZones()
    {
        var map = ShardRangeMap.Even(1024);
        // Unequal zones (sizes 2, 3, 5, 10) make the zone rule bind.
        var nodes = Enumerable.Range(1, 20).Select(i => new RingNode(i, i <= 2 ? "a" : i <= 5 ? "b" : i <= 10 ? "c" : "d")).ToList();
        var zoneOf = nodes.ToDictionary(n => n.Id, n => n.Zone);
        foreach (var p in new HashRing(nodes, Small).Place(map))
            Assert.Equal(3, p.Voters.Select(v => zoneOf[v]).Distinct().Count());
        // Two zones for three replicas: both zones used, then a distinct node.
        var two = Nodes(10, zones: 2);
        var zoneOfTwo = two.ToDictionary(n => n.Id, n => n.Zone);
        foreach (var p in new HashRing(two, Small).Place(map))
        {
            Assert.Equal(3, p.Voters.Distinct().Count());
            Assert.Equal(2, p.Voters.Select(v => zoneOfTwo[v]).Distinct().Count());
        }
    }

    [Fact]
    public void NoNodeHoldsMoreThanTheCapacity()
    {
        var settings = new RingSettings();
        var map = ShardRangeMap.Even(4096);
        var placement = new HashRing(Nodes(100), settings).Place(map);
        var load = placement.SelectMany(p => p.Voters).CountBy(v => v).Select(kv => kv.Value).ToList();
        double mean = 4096.0 * 3 / 100;
        Assert.Equal(100, load.Count);
        Assert.True(load.Max() <= Math.Floor((1 + settings.LoadBound) * mean), $"max {load.Max()} over capacity");
        // Without the bound the same ring is visibly less even: the bound is doing the work.
        var plain = new HashRing(Nodes(100), settings with { LoadBound = 10 }).Place(map).SelectMany(p => p.Voters).CountBy(v => v).Max(kv => kv.Value);
        Assert.True(plain > Math.Floor((1 + settings.LoadBound) * mean), $"plain consistent hashing gave max {plain}");
    }

    [Fact]
    public void WithoutTheBoundAJoinMovesReplicasOnlyToTheNewNodeAndALeaveOnlyFromTheLeavingOne()
    {
        var map = ShardRangeMap.Even(512);
        var before = new HashRing(Nodes(12), Unbounded).Place(map);
        var joined = new HashRing(Nodes(13), Unbounded).Place(map);
        foreach (var (a, b) in before.Zip(joined))
            Assert.All(b.Voters.Except(a.Voters), v => Assert.Equal(13, v));
        var left = new HashRing(Nodes(12).Where(n => n.Id != 5), Unbounded).Place(map);
        foreach (var (a, b) in before.Zip(left))
            Assert.All(a.Voters.Except(b.Voters), v => Assert.Equal(5, v));
    }

    [Fact]
    public void NodesThatDoNotHoldVotersGetNoneAndDownNodesKeepTheirPlace()
    {
        var map = ShardRangeMap.Even(256);
        var nodes = Nodes(8);
        var all = new HashRing(nodes, Small).Place(map);
        nodes[0] = nodes[0] with { State = RingNodeState.Draining };
        nodes[1] = nodes[1] with { State = RingNodeState.Removed };
        nodes[2] = nodes[2] with { LearnerOnly = true };
        nodes[3] = nodes[3] with { State = RingNodeState.Down };
        nodes[4] = nodes[4] with { State = RingNodeState.Suspended };
        var ring = new HashRing(nodes, Small);
        var placement = ring.Place(map);
        Assert.DoesNotContain(placement, p => p.Voters.Intersect([1, 2, 3]).Any());
        Assert.Contains(placement, p => p.Voters.Contains(4));
        Assert.Contains(placement, p => p.Voters.Contains(5));
        Assert.Equal(5 * 16, ring.Tokens.Count);
        // The same ring without the three excluded nodes gives the same placement: exclusion is removal from the ring.
        Assert.Equal(new HashRing(nodes.Skip(3), Small).Place(map), placement);
        Assert.NotEqual(all, placement);
    }

    [Fact]
    public void PinsComeFirstAndTheRingFillsTheRest()
    {
        var map = ShardRangeMap.Even(64);
        var nodes = Nodes(10);
        var ring = new HashRing(nodes, Small);
        var plain = ring.Place(map);
        int outsider = nodes.Select(n => n.Id).First(id => !plain[5].Voters.Contains(id));
        var pin = ShardPin.Move(5, plain[5].Voters, plain[5].Voters[2], outsider);
        var pinned = ring.Place(map, [pin]);
        Assert.Equal(pin.Nodes, pinned[5].Voters);
        // A pin on a node that can no longer hold voters gives that slot back to the ring.
        var drained = nodes.Select(n => n.Id == outsider ? n with { State = RingNodeState.Draining } : n).ToList();
        var afterDrain = new HashRing(drained, Small).Place(map, [pin]);
        Assert.Equal(3, afterDrain[5].Voters.Count);
        Assert.DoesNotContain(outsider, afterDrain[5].Voters);
        Assert.Equal(pin.Nodes.Where(n => n != outsider), afterDrain[5].Voters.Take(2));
        // A partial pin: the ring completes it.
        var partial = ring.Place(map, [new ShardPin(7, [outsider])]);
        Assert.Equal(outsider, partial[7].Voters[0]);
        Assert.Equal(3, partial[7].Voters.Distinct().Count());
        Assert.Throws<ArgumentException>(() => ring.Place(map, [pin, pin]));
        var list = new List<int> { 1, 2 };
        var own = new ShardPin(0, list);
        list[0] = 9;
        Assert.Equal([1, 2], own.Nodes); // the pin keeps its own copy
        Assert.Throws<ArgumentException>(() => ShardPin.Move(5, plain[5].Voters, outsider, plain[5].Voters[0]));
    }

    [Fact]
    public void AfterASplitTheLeftHalfKeepsItsReplicas()
    {
        var nodes = Nodes(10);
        var map = ShardRangeMap.Even(32);
        var split = map.Split(9, 32);
        var before = new HashRing(nodes, Unbounded).Place(map);
        var after = new HashRing(nodes, Unbounded).Place(split);
        Assert.Equal(before.Single(p => p.Shard == 9).Voters, after.Single(p => p.Shard == 9).Voters);
        Assert.Equal(33, after.Count);
        Assert.Equal(Enumerable.Range(0, 33), after.Select(p => p.Shard)); // ordered by shard id
    }

    [Fact]
    public void SummaryAddsUpAndMatchesTheInputs()
    {
        var nodes = Nodes(6).Append(new RingNode(7, State: RingNodeState.Draining)).ToList();
        var ring = new HashRing(nodes, Small);
        var map = ShardRangeMap.Even(40);
        var placement = ring.Place(map).Select(p => p.Shard == 0 ? new ShardPlacement(0, p.Voters, [7]) : p).ToList();
        var leaders = placement.ToDictionary(p => p.Shard, p => p.Voters[0]);
        var sizes = placement.ToDictionary(p => p.Shard, p => 1000L + p.Shard);
        var summary = ring.Summarize(placement, leaders, sizes);
        Assert.Equal(Enumerable.Range(1, 7), summary.Select(e => e.Node));
        Assert.Equal(1.0, summary.Sum(e => e.Share), 9);
        Assert.All(summary.Take(6), e => Assert.Equal(16, e.Tokens));
        var draining = summary[6];
        Assert.Equal((0, 0.0, 1, 0, 1000L), (draining.Tokens, draining.Share, draining.ShardsHeld, draining.ShardsLed, draining.Bytes));
        foreach (var e in summary.Take(6))
        {
            Assert.Equal(placement.Count(p => p.Voters.Contains(e.Node)), e.ShardsHeld);
            Assert.Equal(leaders.Count(l => l.Value == e.Node), e.ShardsLed);
            Assert.Equal(placement.Where(p => p.Voters.Contains(e.Node)).Sum(p => sizes[p.Shard]), e.Bytes);
            // Share by brute force: hashes whose owner is this node, measured as arcs between sorted tokens.
            double share = 0;
            var t = ring.Tokens;
            for (int i = 0; i < t.Count; i++)
                if (t[i].Node == e.Node) share += (double)unchecked(t[i].Position - t[(i + t.Count - 1) % t.Count].Position) / Math.Pow(2, 64);
            Assert.Equal(share, e.Share, 12);
        }
    }

    [Fact]
    public void ASingleTokenOwnsTheWholeSpace()
    {
        var ring = new HashRing([new RingNode(1)], new RingSettings { TokensPerNode = 1 });
        Assert.Equal(1.0, Assert.Single(ring.Summarize([])).Share);
    }

    [Fact]
    public void BadNodesAreRefused()
    {
        Assert.Throws<ArgumentException>(() => new HashRing([new RingNode(1), new RingNode(1)]));
        Assert.Throws<ArgumentException>(() => new HashRing([new RingNode(0)]));
        Assert.Throws<InvalidOperationException>(() => new HashRing([]).OwnerOf(5));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RingSettings { TokensPerNode = 0 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new RingSettings { ReplicationFactor = 0 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new RingSettings { LoadBound = -0.1 });
    }

    internal static List<RingNode> Nodes(int count, int zones = 0) =>
        Enumerable.Range(1, count).Select(i => new RingNode(i, zones > 0 ? "z" + (i % zones) : null)).ToList();
}
