using Replication.Engine.Ring;
using Replication.Simulation.Placement;
using Xunit;

namespace Replication.Engine.Tests.Ring;

public sealed class PlacementPlannerTests
{
    private static readonly RingSettings Small = new() { TokensPerNode = 16 };
    private static readonly ShardRangeMap Map = ShardRangeMap.Even(256);

    [Fact]
    public void AJoinConvergesToTheRingWithEveryStepSafeAndBoundedConcurrency()
    {
        var before = HashRingTests.Nodes(20);
        var after = HashRingTests.Nodes(21);
        var current = new HashRing(before, Small).Place(Map);
        var desired = new HashRing(after, Small).Place(Map);
        var run = Drive(after, current, desired, maxConcurrentMoves: 4);
        Assert.Equal(desired, run.Final);
        Assert.True(run.MaxInMotion <= 4, $"{run.MaxInMotion} shards in motion");
        // One copy per replica that changed node, no more.
        Assert.Equal(desired.Zip(current).Sum(x => x.First.Voters.Except(x.Second.Voters).Count()), run.Copies);
        Assert.Equal(run.Copies, PlacementPlanner.Moves(after, current, desired).Count);
    }

    [Fact]
    public void ADrainingNodeIsEmptiedAndItsMovesSayWhy()
    {
        var nodes = HashRingTests.Nodes(12);
        var current = new HashRing(nodes, Small).Place(Map);
        nodes[4] = nodes[4] with { State = RingNodeState.Draining };
        var desired = new HashRing(nodes, Small).Place(Map);
        var run = Drive(nodes, current, desired, maxConcurrentMoves: 16);
        Assert.Equal(desired, run.Final);
        Assert.DoesNotContain(run.Final, p => p.Holds(5));
        Assert.All(run.Steps.Where(s => s.FromNode == 5), s => Assert.Equal(MoveReason.NodeDraining, s.Reason));
        Assert.Contains(run.Steps, s => s is { FromNode: 5, Step: ShardMoveStep.RemoveVoter });
    }

    [Fact]
    public void AReplicaOnARemovedNodeIsReplacedBeforeItIsDropped()
    {
        var nodes = new List<RingNode> { new(1), new(2), new(3, State: RingNodeState.Removed), new(4) };
        var current = new[] { new ShardPlacement(0, [1, 2, 3]) };
        var desired = new[] { new ShardPlacement(0, [1, 2, 4]) };
        var run = Drive(nodes, current, desired, maxConcurrentMoves: 1);
        Assert.Equal(
            [new ShardMove(0, 3, 4, ShardMoveStep.AddLearner, MoveReason.NodeRemoved),
             new ShardMove(0, 3, 4, ShardMoveStep.PromoteLearner, MoveReason.NodeRemoved),
             new ShardMove(0, 3, 0, ShardMoveStep.RemoveVoter, MoveReason.NodeRemoved)],
            run.Steps);
        Assert.Equal(desired, run.Final);
    }

    [Fact]
    public void NoStepOnAShardWithoutALiveMajority()
    {
        var nodes = new List<RingNode> { new(1), new(2, State: RingNodeState.Down), new(3, State: RingNodeState.Removed), new(4), new(5) };
        var current = new[] { new ShardPlacement(0, [1, 2, 3]) };
        Assert.Empty(PlacementPlanner.Plan(nodes, current, [new ShardPlacement(0, [1, 4, 5])], 8));
    }

    [Fact]
    public void WithOneVoterDownEveryStepStillKeepsAMajority()
    {
        // Voters 1, 2, 3 with 3 down; the placement swaps 2 and 3 for 4 and 5. Removing the live voter 2
        // while 3 is still a voter of four would leave 2 live of 3: allowed; 3 (down) goes first anyway.
        var nodes = new List<RingNode> { new(1), new(2), new(3, State: RingNodeState.Down), new(4), new(5) };
        var current = new[] { new ShardPlacement(0, [1, 2, 3]) };
        var desired = new[] { new ShardPlacement(0, [1, 4, 5]) };
        var run = Drive(nodes, current, desired, maxConcurrentMoves: 1);
        Assert.Equal(desired, run.Final);
        var removals = run.Steps.Where(s => s.Step == ShardMoveStep.RemoveVoter).Select(s => s.FromNode).ToList();
        Assert.Equal([3, 2], removals);
    }

    [Fact]
    public void DataIsCopiedOnlyToRunningNodesAndAWaitingShardHoldsNoSlot()
    {
        var nodes = new List<RingNode> { new(1), new(2), new(3), new(4, State: RingNodeState.Down), new(5), new(6) };
        var current = new[] { new ShardPlacement(0, [1, 2, 3]), new ShardPlacement(1, [1, 2, 3]) };
        var desired = new[] { new ShardPlacement(0, [1, 2, 4]), new ShardPlacement(1, [1, 2, 5]) };
        // Shard 0 waits for node 4; it must not keep shard 1 from starting within a budget of one.
        var steps = PlacementPlanner.Plan(nodes, current, desired, 1);
        Assert.Equal([new ShardMove(1, 3, 5, ShardMoveStep.AddLearner, MoveReason.Rebalance)], steps);
        // A learner whose node went down is not promoted.
        var copying = new[] { new ShardPlacement(0, [1, 2, 3], [4]), current[1] };
        Assert.DoesNotContain(PlacementPlanner.Plan(nodes, copying, desired, 8), s => s.Shard == 0);
    }

    [Fact]
    public void UrgentMovesStartFirst()
    {
        var nodes = new List<RingNode>
        {
            new(1), new(2), new(3), new(4, State: RingNodeState.Draining), new(5, State: RingNodeState.Removed),
            new(6, State: RingNodeState.Down), new(7), new(8),
        };
        var current = new[]
        {
            new ShardPlacement(0, [1, 2, 3]),       // rebalance: 3 -> 7
            new ShardPlacement(1, [1, 2, 4]),       // off a draining node
            new ShardPlacement(2, [1, 2, 6]),       // off a down node
            new ShardPlacement(3, [1, 2, 5]),       // off a removed node
            new ShardPlacement(4, [1, 2]),          // short of a voter
        };
        var desired = Enumerable.Range(0, 5).Select(s => new ShardPlacement(s, [1, 2, 7])).ToArray();
        var order = new List<int>();
        var state = current.ToArray();
        for (int i = 0; i < 5; i++)
        {
            var step = Assert.Single(PlacementPlanner.Plan(nodes, state, desired, 1));
            order.Add(step.Shard);
            // Finish that shard's move before the next one may start.
            state = Drive(nodes, state, desired, 1, onlyShard: step.Shard).Final.ToArray();
        }
        Assert.Equal([3, 4, 2, 1, 0], order);
    }

    [Fact]
    public void ShardsInMotionContinueWhateverTheBudget()
    {
        var nodes = HashRingTests.Nodes(6);
        var current = new[]
        {
            new ShardPlacement(0, [1, 2, 3], [4]),
            new ShardPlacement(1, [1, 2, 3, 5]),
            new ShardPlacement(2, [1, 2, 3]),
        };
        var desired = new[] { new ShardPlacement(0, [1, 2, 4]), new ShardPlacement(1, [1, 2, 5]), new ShardPlacement(2, [1, 2, 6]) };
        Assert.Equal(
            [new ShardMove(0, 3, 4, ShardMoveStep.PromoteLearner, MoveReason.Rebalance),
             new ShardMove(1, 3, 0, ShardMoveStep.RemoveVoter, MoveReason.Rebalance)],
            PlacementPlanner.Plan(nodes, current, desired, 1));
        Assert.Equal(3, PlacementPlanner.Plan(nodes, current, desired, 3).Count);
    }

    [Fact]
    public void PermanentLearnersStayAndAbandonedOnesGo()
    {
        var nodes = HashRingTests.Nodes(4).Append(new RingNode(9, LearnerOnly: true)).ToList();
        var withAsyncCopy = new[] { new ShardPlacement(0, [1, 2, 3], [9]) };
        var desired = new[] { new ShardPlacement(0, [1, 2, 3]) };
        Assert.Empty(PlacementPlanner.Plan(nodes, withAsyncCopy, desired, 4));
        var abandoned = new[] { new ShardPlacement(0, [1, 2, 3], [4, 9]) };
        Assert.Equal([new ShardMove(0, 4, 0, ShardMoveStep.RemoveLearner, MoveReason.Abandoned)], PlacementPlanner.Plan(nodes, abandoned, desired, 4));
    }

    [Fact]
    public void PlanningIsLevelTriggered()
    {
        // Carry out only some of the steps (a crash), plan again: the rest are asked for again, unchanged.
        var nodes = HashRingTests.Nodes(16);
        var current = new HashRing(nodes.Take(15), Small).Place(Map);
        var desired = new HashRing(nodes, Small).Place(Map);
        var first = PlacementPlanner.Plan(nodes, current, desired, 8);
        Assert.Equal(8, first.Count);
        var state = current.ToArray();
        foreach (var step in first.Take(3)) state[step.Shard] = MoveExecutor.Apply(state[step.Shard], step);
        var second = PlacementPlanner.Plan(nodes, state, desired, 8);
        Assert.Equal(first.Skip(3), second.Where(s => first.Skip(3).Any(f => f.Shard == s.Shard)));
        Assert.All(first.Take(3), done => Assert.Contains(second, s => s.Shard == done.Shard && s.Step == ShardMoveStep.PromoteLearner));
    }

    [Fact]
    public void PlansAreDeterministicAndIgnoreInputOrder()
    {
        var nodes = HashRingTests.Nodes(10, zones: 3);
        var current = new HashRing(nodes.Take(8), Small).Place(Map);
        var desired = new HashRing(nodes, Small).Place(Map);
        var a = PlacementPlanner.Plan(nodes, current, desired, 20);
        var b = PlacementPlanner.Plan(nodes.AsEnumerable().Reverse().ToList(), current.Reverse().ToList(), desired.Reverse().ToList(), 20);
        Assert.Equal(a, b);
    }

    [Fact]
    public void RandomMembershipsStaySafeAndConvergeWhenTheyCan()
    {
        // Random current memberships (learners, extra or missing voters, nodes in every state) against a
        // ring placement: every step keeps a live majority and never drops below the placement's count.
        // A shard reaches its placement when it can: it starts with a live majority, no voter or target is
        // down (a down voter may leave too few live ones to remove any other), and every target can take a copy.
        int converging = 0;
        for (int seed = 0; seed < 40; seed++)
        {
            var rng = new Random(seed);
            var states = new[] { RingNodeState.Running, RingNodeState.Running, RingNodeState.Running, RingNodeState.Draining, RingNodeState.Down, RingNodeState.Removed, RingNodeState.Suspended };
            var nodes = Enumerable.Range(1, 10).Select(i => new RingNode(i, "z" + i % 3, states[rng.Next(states.Length)])).ToList();
            var desired = new HashRing(nodes, Small).Place(ShardRangeMap.Even(32));
            var current = desired.Select(d =>
            {
                var ids = Enumerable.Range(1, 10).OrderBy(_ => rng.Next()).ToList();
                int voters = rng.Next(1, 6), learners = rng.Next(0, 3);
                return new ShardPlacement(d.Shard, ids.Take(voters).ToArray(), ids.Skip(voters).Take(learners).ToArray());
            }).ToArray();
            var run = Drive(nodes, current, desired, rng.Next(1, 6));
            var byId = nodes.ToDictionary(n => n.Id);
            foreach (var (start, end) in current.Zip(run.Final))
            {
                var want = desired[start.Shard].Voters;
                bool startable = start.Voters.Count(v => byId[v].IsLive) >= start.Voters.Count / 2 + 1;
                bool noneDown = start.Voters.Concat(want).All(v => byId[v].State != RingNodeState.Down);
                bool targetsUp = want.All(v => byId[v].CanReceive || start.Voters.Contains(v) || start.Learners.Contains(v) && byId[v].IsLive);
                if (!(startable && noneDown && targetsUp)) continue;
                converging++;
                Assert.True(desired[start.Shard].Equals(end), $"seed {seed}: {start} ended at {end}, not {desired[start.Shard]}");
            }
        }
        Assert.True(converging >= 100, $"only {converging} shards could converge: the generator tests too little");
    }

    [Fact]
    public void RemovalCheckCountsWhatIsLeft()
    {
        var three = HashRingTests.Nodes(3);
        var placement = new HashRing(three, Small).Place(Map);
        var refused = PlacementPlanner.CheckRemoval(three, placement, 2, 3);
        Assert.False(refused.CanKeepReplicationFactor);
        Assert.Equal((256, 2), (refused.ShardsHeld, refused.NodesLeft));
        Assert.Contains("cannot be removed", refused.Reason);

        var four = HashRingTests.Nodes(4);
        var ok = PlacementPlanner.CheckRemoval(four, new HashRing(four, Small).Place(Map), 4, 3);
        Assert.True(ok.CanKeepReplicationFactor);
        Assert.Equal(0, ok.ShardsLosingQuorum);

        // With node 1 down, removing node 2 at once leaves shards on {1, 2, 3} with 1 live of 2.
        var oneDown = four.Select(n => n.Id == 1 ? n with { State = RingNodeState.Down } : n).ToList();
        var check = PlacementPlanner.CheckRemoval(oneDown, [new ShardPlacement(0, [1, 2, 3]), new ShardPlacement(1, [2, 3, 4])], 2, 3);
        Assert.False(check.CanKeepReplicationFactor); // 3 and 4 are the only other live nodes
        Assert.Equal(1, check.ShardsLosingQuorum);

        // Zones: removing the only node of a zone keeps RF but loses the spread.
        var zoned = new List<RingNode> { new(1, "a"), new(2, "b"), new(3, "c"), new(4, "a") };
        var zoneCheck = PlacementPlanner.CheckRemoval(zoned, [], 3, 3);
        Assert.True(zoneCheck.CanKeepReplicationFactor);
        Assert.False(zoneCheck.KeepsZoneSpread);
        Assert.Throws<ArgumentException>(() => PlacementPlanner.CheckRemoval(zoned, [], 99, 3));
    }

    [Fact]
    public void BadInputIsRefused()
    {
        var nodes = HashRingTests.Nodes(3);
        var p = new[] { new ShardPlacement(0, [1, 2, 3]) };
        Assert.Throws<ArgumentOutOfRangeException>(() => PlacementPlanner.Plan(nodes, p, p, 0));
        Assert.Throws<ArgumentException>(() => PlacementPlanner.Plan(nodes, p, [], 1));
        Assert.Throws<ArgumentException>(() => PlacementPlanner.Plan(nodes, [p[0], p[0]], p, 1));
        Assert.Throws<ArgumentException>(() => new ShardPlacement(0, [1, 2], [2]));
    }

    private sealed record RunResult(IReadOnlyList<ShardPlacement> Final, IReadOnlyList<ShardMove> Steps, int Copies, int MaxInMotion);

    // Calls the planner and carries out every step it returns until it returns nothing, asserting each
    // step's safety and the concurrency bound; onlyShard restricts the carrying out to one shard.
    private static RunResult Drive(IReadOnlyList<RingNode> nodes, IReadOnlyList<ShardPlacement> current, IReadOnlyList<ShardPlacement> desired,
        int maxConcurrentMoves, int? onlyShard = null)
    {
        var byId = nodes.ToDictionary(n => n.Id);
        var want = desired.ToDictionary(d => d.Shard);
        var state = current.ToDictionary(c => c.Shard);
        var steps = new List<ShardMove>();
        int copies = 0, maxInMotion = 0;
        for (int call = 0; ; call++)
        {
            Assert.True(call < 200, "the planner did not finish");
            var plan = PlacementPlanner.Plan(nodes, state.Values.ToList(), desired, maxConcurrentMoves).Where(s => onlyShard is null || s.Shard == onlyShard).ToList();
            if (plan.Count == 0) break;
            Assert.Equal(plan.Count, plan.Select(s => s.Shard).Distinct().Count());
            foreach (var step in plan)
            {
                var before = state[step.Shard];
                var after = MoveExecutor.Apply(before, step);
                Assert.Null(MoveExecutor.Violation(before, after, want[step.Shard], byId, step));
                if (step.Step == ShardMoveStep.AddLearner) copies++;
                state[step.Shard] = after;
                steps.Add(step);
            }
            int inMotion = state.Values.Count(p => p.Learners.Any(l => !byId[l].LearnerOnly) || p.Voters.Count > want[p.Shard].Voters.Count);
            maxInMotion = Math.Max(maxInMotion, inMotion);
        }
        return new RunResult(state.Values.OrderBy(p => p.Shard).ToList(), steps, copies, maxInMotion);
    }
}
