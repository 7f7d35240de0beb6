using Replication.Engine.Ring;
using Xunit;

namespace Replication.Engine.Tests.Ring;

public sealed class LeaderBalancerTests
{
    [Fact]
    public void PiledLeadershipsSpreadToFloorOrCeilingAndStayPut()
    {
        // The fresh cluster: every shard led by its lowest voter.
        var nodes = HashRingTests.Nodes(10);
        var shards = new HashRing(nodes, new RingSettings { TokensPerNode = 16 }).Place(ShardRangeMap.Even(256));
        var leaders = shards.ToDictionary(p => p.Shard, p => p.Voters.Min());
        var transfers = LeaderBalancer.Plan(nodes, shards, leaders);
        Assert.Equal(transfers.Count, transfers.Select(t => t.Shard).Distinct().Count());
        Assert.All(transfers, t => Assert.Contains(t.ToNode, shards[t.Shard].Voters));
        Apply(leaders, transfers);
        Assert.All(Counts(nodes, leaders).Values, c => Assert.InRange(c, 25, 26)); // 256 / 10
        Assert.Empty(LeaderBalancer.Plan(nodes, shards, leaders));
        Assert.Equal(LowerBound(nodes, shards.ToDictionary(p => p.Shard, p => p.Voters.Min())), transfers.Count);
    }

    [Fact]
    public void SuspendedAndDrainingNodesHandOverAndDownLeadersAreLeftToTheElection()
    {
        var nodes = new List<RingNode> { new(1, State: RingNodeState.Suspended), new(2, State: RingNodeState.Draining), new(3), new(4), new(5, State: RingNodeState.Down) };
        var shards = new[]
        {
            new ShardPlacement(0, [1, 3, 4]), new ShardPlacement(1, [2, 3, 4]), new ShardPlacement(2, [5, 3, 4]),
            new ShardPlacement(3, [1, 2, 5]), // nobody here may lead: it stays
        };
        var leaders = new Dictionary<int, int> { [0] = 1, [1] = 2, [2] = 5, [3] = 1 };
        var transfers = LeaderBalancer.Plan(nodes, shards, leaders);
        Assert.Equal([new LeaderTransfer(0, 1, 3), new LeaderTransfer(1, 2, 4)], transfers);
    }

    [Fact]
    public void ADirectTransferFromAnyNodeGoesBeforeAChain()
    {
        // 1 and 3 lead two each, 2 none. 1 shares its shards only with 3 (as when 2's replica of them is still catching up,
        // ClusterNode.BalanceLeaders), 3 shares its own with 2: one transfer from 3 balances it. Trying 1 first, with a chain
        // for want of a direct transfer from it, moved two leaderships (1 to 3, 3 to 2).
        var nodes = HashRingTests.Nodes(3);
        var shards = new[] { new ShardPlacement(0, [1, 3]), new ShardPlacement(1, [1, 3]), new ShardPlacement(2, [3, 2]), new ShardPlacement(3, [3, 2]) };
        var leaders = new Dictionary<int, int> { [0] = 1, [1] = 1, [2] = 3, [3] = 3 };
        Assert.Equal([new LeaderTransfer(2, 3, 2)], LeaderBalancer.Plan(nodes, shards, leaders));
    }

    [Fact]
    public void AChainMovesALeadershipWhereNoSingleTransferCan()
    {
        // 1 leads two shards it shares only with 2; 2 leads one it shares with 3; 3 leads none.
        var nodes = HashRingTests.Nodes(3);
        var shards = new[] { new ShardPlacement(0, [1, 2]), new ShardPlacement(1, [1, 2]), new ShardPlacement(2, [2, 3]) };
        var leaders = new Dictionary<int, int> { [0] = 1, [1] = 1, [2] = 2 };
        Assert.Equal([new LeaderTransfer(0, 1, 2), new LeaderTransfer(2, 2, 3)], LeaderBalancer.Plan(nodes, shards, leaders));
    }

    [Fact]
    public void MatchesTheBruteForceOptimumOnSmallClusters()
    {
        // Optimal semi-matchings minimise the sum of squared loads; compare with every assignment.
        for (int seed = 0; seed < 300; seed++)
        {
            var rng = new Random(seed);
            int n = rng.Next(2, 6), s = rng.Next(1, 8);
            var nodes = HashRingTests.Nodes(n);
            var shards = Enumerable.Range(0, s).Select(i =>
                new ShardPlacement(i, Enumerable.Range(1, n).OrderBy(_ => rng.Next()).Take(rng.Next(1, Math.Min(3, n) + 1)).ToArray())).ToArray();
            var leaders = shards.ToDictionary(p => p.Shard, p => p.Voters[rng.Next(p.Voters.Count)]);
            var transfers = LeaderBalancer.Plan(nodes, shards, leaders);
            Apply(leaders, transfers);
            Assert.Equal(BruteForceBestSumOfSquares(shards, n), Counts(nodes, leaders).Values.Sum(c => c * c));
            Assert.Empty(LeaderBalancer.Plan(nodes, shards, leaders));
        }
    }

    [Fact]
    public void WithUnconstrainedVotersTheTransfersAreTheMinimum()
    {
        for (int seed = 0; seed < 50; seed++)
        {
            var rng = new Random(seed);
            int n = rng.Next(2, 9), s = rng.Next(1, 60);
            var nodes = HashRingTests.Nodes(n);
            var shards = Enumerable.Range(0, s).Select(i => new ShardPlacement(i, Enumerable.Range(1, n).ToArray())).ToArray();
            var leaders = shards.ToDictionary(p => p.Shard, _ => rng.Next(1, 1 + Math.Min(n, rng.Next(1, n + 1))));
            var transfers = LeaderBalancer.Plan(nodes, shards, leaders);
            Assert.Equal(LowerBound(nodes, leaders), transfers.Count);
        }
    }

    [Fact]
    public void TheSameInputGivesTheSamePlan()
    {
        var nodes = HashRingTests.Nodes(7);
        var shards = new HashRing(nodes, new RingSettings { TokensPerNode = 8 }).Place(ShardRangeMap.Even(100));
        var leaders = shards.ToDictionary(p => p.Shard, p => p.Voters[p.Shard % p.Voters.Count]);
        var a = LeaderBalancer.Plan(nodes, shards, leaders);
        var b = LeaderBalancer.Plan(nodes.AsEnumerable().Reverse().ToList(), shards.Reverse().ToList(), new Dictionary<int, int>(leaders.Reverse()));
        Assert.Equal(a, b);
        Assert.Equal(a.OrderBy(t => t.Shard), a);
    }

    private static void Apply(Dictionary<int, int> leaders, IReadOnlyList<LeaderTransfer> transfers)
    {
        foreach (var t in transfers)
        {
            Assert.Equal(leaders[t.Shard], t.FromNode);
            leaders[t.Shard] = t.ToNode;
        }
    }

    private static Dictionary<int, int> Counts(List<RingNode> nodes, Dictionary<int, int> leaders)
    {
        var counts = nodes.ToDictionary(n => n.Id, _ => 0);
        foreach (int l in leaders.Values) counts[l]++;
        return counts;
    }

    // With every node a candidate for every shard: what sits above the ⌊S/N⌋/⌈S/N⌉ targets, the
    // ⌈S/N⌉ targets going to the nodes that lead most.
    private static int LowerBound(List<RingNode> nodes, Dictionary<int, int> leaders)
    {
        int floor = leaders.Count / nodes.Count, extra = leaders.Count % nodes.Count;
        return Counts(nodes, leaders).Values.OrderDescending().Select((c, i) => Math.Max(0, c - (i < extra ? floor + 1 : floor))).Sum();
    }

    private static int BruteForceBestSumOfSquares(ShardPlacement[] shards, int nodeCount)
    {
        int best = int.MaxValue;
        var load = new int[nodeCount + 1];
        void Visit(int i)
        {
            if (i == shards.Length) { best = Math.Min(best, load.Sum(c => c * c)); return; }
            foreach (int v in shards[i].Voters) { load[v]++; Visit(i + 1); load[v]--; }
        }
        Visit(0);
        return best;
    }
}
