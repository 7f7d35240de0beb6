using System.Globalization;
using Replication.Engine.Ring;

namespace Replication.Simulation.Placement;

/// <summary>
/// The placement simulation (./build.ps1 Simulate -Placement): the ring, the move planner and the
/// leader balancer of src/Replication.Engine/Ring driven through scripted membership histories at
/// 100 nodes × 4,096 shards, with no I/O and no clock, so every figure is reproducible from the seed.
/// For each change: the ring's new placement, the replica movement against the ideal share, the
/// planner's steps carried out one membership change at a time until the placement is reached (each
/// step checked for quorum), leaders re-elected where their replica left and then balanced.
/// Stateless; each run is independent.
/// </summary>
public static class PlacementSimulation
{
    /// <summary>Shards in the simulated cluster (the 4,096).</summary>
    public const int Shards = 4096;

    /// <summary>Voters per shard.</summary>
    public const int ReplicationFactor = 3;

    /// <summary>Shards in motion at once in the simulation; only the number of planner calls depends on it.</summary>
    public const int MaxConcurrentMoves = 512;

    /// <summary>The standard scenarios: growth from 3 nodes to 100 and back, churn and bursts at 100, without and with 5 zones.</summary>
    public static IReadOnlyList<PlacementScenario> StandardScenarios() =>
    [
        PlacementScenario.Grow(3, 100),
        PlacementScenario.Shrink(100, 3),
        PlacementScenario.Churn(100, 20),
        PlacementScenario.Bursts(100, 5, 4),
        PlacementScenario.Grow(5, 100, zones: 5),
        PlacementScenario.Shrink(100, 5, zones: 5),
        PlacementScenario.Churn(100, 20, zones: 5),
        PlacementScenario.Bursts(100, 5, 4, zones: 5),
    ];

    /// <summary>
    /// Runs <paramref name="scenario"/> with the given ring settings; <paramref name="seed"/> picks the
    /// leaving nodes and election winners. Without <paramref name="planAndBalance"/> only the ring's
    /// placements are measured (no planner, no leaders): what the parameter sweep needs.
    /// </summary>
    public static ScenarioResult Run(PlacementScenario scenario, RingSettings settings, int seed, bool planAndBalance = true, int shards = Shards)
    {
        var result = new ScenarioResult(scenario);
        var rng = new Random(seed);
        var map = ShardRangeMap.Even(shards);
        var nodes = Enumerable.Range(1, scenario.InitialNodes).Select(id => NewNode(id, scenario.Zones)).ToList();
        int nextId = scenario.InitialNodes + 1;
        var current = new HashRing(nodes, settings).Place(map);
        // Start as the issue found a fresh cluster: leaderships piled on the lowest ids.
        var leaders = current.ToDictionary(p => p.Shard, p => p.Voters.Min());
        Observe(result, nodes, current, settings.ReplicationFactor);

        foreach (int change in scenario.Changes)
        {
            double ideal;
            var leaving = new List<int>();
            if (change > 0)
            {
                for (int k = 0; k < change; k++) nodes.Add(NewNode(nextId++, scenario.Zones));
                ideal = (double)shards * Math.Min(settings.ReplicationFactor, nodes.Count) * change / nodes.Count;
            }
            else
            {
                var running = nodes.Select(n => n.Id).ToList();
                for (int k = 0; k < -change; k++)
                {
                    int victim = running[rng.Next(running.Count)];
                    running.Remove(victim);
                    leaving.Add(victim);
                }
                ideal = current.Sum(p => p.Voters.Count(leaving.Contains));
                nodes = nodes.Select(n => leaving.Contains(n.Id) ? n with { State = RingNodeState.Draining } : n).ToList();
            }
            var desired = new HashRing(nodes, settings).Place(map);
            long moved = desired.Zip(current).Sum(x => x.First.Voters.Except(x.Second.Voters).Count());
            result.Moved += moved;
            result.MovementRatios.Add(moved / ideal);
            result.Changes++;

            if (planAndBalance) current = Execute(result, nodes, current, desired);
            else current = desired;
            nodes.RemoveAll(n => leaving.Contains(n.Id));
            Observe(result, nodes, current, settings.ReplicationFactor);
            if (planAndBalance) BalanceLeaders(result, nodes, current, leaders, rng);
        }
        return result;
    }

    /// <summary>Runs every standard scenario with the default settings and prints the table.</summary>
    public static IReadOnlyList<ScenarioResult> RunStandard(TextWriter output, int seed = 1)
    {
        var settings = new RingSettings { ReplicationFactor = ReplicationFactor };
        output.WriteLine($"Placement simulation: {Shards} shards, RF {ReplicationFactor}, {settings.TokensPerNode} tokens per node, " +
            $"load bound {settings.LoadBound.ToString(CultureInfo.InvariantCulture)}, seed {seed}.");
        var results = StandardScenarios().Select(s => Run(s, settings, seed)).ToList();
        PrintTable(results, output);
        foreach (var r in results)
            foreach (var v in r.Violations.Take(5)) output.WriteLine($"violation in \"{r.Scenario.Name}\": {v}");
        return results;
    }

    /// <summary>
    /// The measurement behind the defaults: spread and movement for each tokens-per-node and load-bound
    /// pair, over churn at 100 nodes without and with zones (ring placements only); then the defaults
    /// with four times the shards, where the per-node noise is half as large.
    /// </summary>
    public static void Sweep(TextWriter output, int seed = 1)
    {
        output.WriteLine("tokens  bound | max/mean  min/mean  moved/ideal mean  p90    max   | zones: max/mean  moved/ideal mean  p90    max");
        foreach (int tokens in new[] { 32, 64, 128, 192, 256, 384, 512 })
            foreach (double bound in new[] { 0.05, 0.10, 0.15, 0.25 })
            {
                var settings = new RingSettings { ReplicationFactor = ReplicationFactor, TokensPerNode = tokens, LoadBound = bound };
                var plain = Run(PlacementScenario.Churn(100, 20), settings, seed, planAndBalance: false);
                var zoned = Run(PlacementScenario.Churn(100, 20, zones: 5), settings, seed, planAndBalance: false);
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{tokens,6}  {bound,5:F2} | {plain.SpreadMax,8:F3}  {plain.SpreadMin,8:F3}  {plain.MovementRatios.Average(),16:F3}  {Percentile(plain.MovementRatios, 0.9),5:F3}  {plain.MovementRatios.Max(),5:F3} | " +
                    $"{zoned.SpreadMax,15:F3}  {zoned.MovementRatios.Average(),16:F3}  {Percentile(zoned.MovementRatios, 0.9),5:F3}  {zoned.MovementRatios.Max(),5:F3}"));
            }
        var defaults = new RingSettings { ReplicationFactor = ReplicationFactor };
        var many = Run(PlacementScenario.Churn(100, 20), defaults, seed, planAndBalance: false, shards: 4 * Shards);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{4 * Shards} shards, {defaults.TokensPerNode} tokens, bound {defaults.LoadBound:F2}: max/mean {many.SpreadMax:F3}  min/mean {many.SpreadMin:F3}  moved/ideal mean {many.MovementRatios.Average():F3}  p90 {Percentile(many.MovementRatios, 0.9):F3}  max {many.MovementRatios.Max():F3}"));
    }

    /// <summary>The table, as pasted into the README's "The ring".</summary>
    public static void PrintTable(IReadOnlyList<ScenarioResult> results, TextWriter w)
    {
        w.WriteLine("| scenario | changes | shards/node max/mean | max/zone-forced | min/mean | moved/ideal mean | max | leaders: worst distance from S/N | transfers / lower bound | zone violations | planner violations |");
        w.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in results)
            w.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {r.Scenario.Name} | {r.Changes} | {r.SpreadMax:F3} | {r.SpreadOverForced:F3} | {r.SpreadMin:F3} | {r.MovementRatios.Average():F3} | {r.MovementRatios.Max():F3} | " +
                $"{r.LeaderDeviation:F2} | {r.Transfers} / {r.TransferLowerBound} | {r.ZoneViolations} | {r.Violations.Count} |"));
    }

    private static RingNode NewNode(int id, int zones) => new(id, zones > 0 ? "z" + ((id - 1) % zones) : null);

    // Calls the planner and carries out its steps until it returns nothing; checks each step and the end state.
    private static IReadOnlyList<ShardPlacement> Execute(ScenarioResult result, List<RingNode> nodes,
        IReadOnlyList<ShardPlacement> current, IReadOnlyList<ShardPlacement> desired)
    {
        var byId = nodes.ToDictionary(n => n.Id);
        var state = current.ToArray();           // index = shard id (ids are 0..Shards-1 here)
        for (int calls = 0; ; calls++)
        {
            var steps = PlacementPlanner.Plan(nodes, state, desired, MaxConcurrentMoves);
            if (steps.Count == 0) break;
            if (calls > 1000) { result.Violations.Add("the planner did not finish within 1000 calls"); break; }
            foreach (var step in steps)
            {
                var before = state[step.Shard];
                var after = MoveExecutor.Apply(before, step);
                if (MoveExecutor.Violation(before, after, desired[step.Shard], byId, step) is { } v) result.Violations.Add(v);
                if (step.Step == ShardMoveStep.AddLearner) result.Copies++;
                state[step.Shard] = after;
            }
            int inMotion = state.Count(p => p.Learners.Count > 0 || p.Voters.Count > desired[p.Shard].Voters.Count);
            result.MaxInMotion = Math.Max(result.MaxInMotion, inMotion);
            if (inMotion > MaxConcurrentMoves) result.Violations.Add($"{inMotion} shards in motion, more than {MaxConcurrentMoves}");
        }
        for (int s = 0; s < state.Length; s++)
            if (!state[s].Equals(desired[s])) result.Violations.Add($"shard {s} ended at {state[s]}, not the placement {desired[s]}");
        return state;
    }

    private static void Observe(ScenarioResult result, List<RingNode> nodes, IReadOnlyList<ShardPlacement> placement, int replicationFactor)
    {
        var load = nodes.ToDictionary(n => n.Id, _ => 0);
        foreach (var p in placement)
            foreach (int v in p.Voters) load[v]++;
        double mean = load.Values.Average();
        result.SpreadMax = Math.Max(result.SpreadMax, load.Values.Max() / mean);
        result.SpreadMin = Math.Min(result.SpreadMin, load.Values.Min() / mean);
        var zoneOf = nodes.ToDictionary(n => n.Id, n => n.Zone);
        bool zoned = nodes.Select(n => n.Zone).Distinct().Count() >= replicationFactor && nodes.Any(n => n.Zone is not null);
        if (zoned)
            result.ZoneViolations += placement.Count(p => p.Voters.Select(v => zoneOf[v]).Distinct().Count() < p.Voters.Count);
        double least = zoned ? ZoneForcedMax(nodes.GroupBy(n => n.Zone).Select(z => z.Count()).ToList(), placement.Count, load.Values.Sum()) : mean;
        result.SpreadOverForced = Math.Max(result.SpreadOverForced, load.Values.Max() / Math.Max(mean, least));
    }

    // The smallest largest node load any placement can have when each shard puts at most one voter in
    // a zone: zone z can hold at most `shards` voters, spread over its nodes, so with largest load L
    // the zones hold at most Σ min(shards, nodes_z · L), which must reach every voter.
    private static double ZoneForcedMax(List<int> zoneSizes, int shards, int voters)
    {
        double lo = 0, hi = voters;
        for (int i = 0; i < 100; i++)
        {
            double mid = (lo + hi) / 2;
            if (zoneSizes.Sum(n => Math.Min(shards, n * mid)) >= voters) hi = mid; else lo = mid;
        }
        return hi;
    }

    // Re-elects a voter where the leader's replica left (as Raft would, any voter), balances, applies the
    // transfers, and checks that planning again returns nothing.
    private static void BalanceLeaders(ScenarioResult result, List<RingNode> nodes, IReadOnlyList<ShardPlacement> placement,
        Dictionary<int, int> leaders, Random rng)
    {
        foreach (var p in placement)
            if (!p.Voters.Contains(leaders[p.Shard])) leaders[p.Shard] = p.Voters[rng.Next(p.Voters.Count)];
        result.TransferLowerBound += LowerBound(nodes, leaders);
        var transfers = LeaderBalancer.Plan(nodes, placement, leaders);
        result.Transfers += transfers.Count;
        foreach (var t in transfers) leaders[t.Shard] = t.ToNode;
        if (LeaderBalancer.Plan(nodes, placement, leaders).Count is > 0 and int again)
            result.Violations.Add($"leader balancing is not stable: {again} more transfers after applying the plan");
        var led = nodes.ToDictionary(n => n.Id, _ => 0);
        foreach (int leader in leaders.Values) led[leader]++;
        double ideal = (double)leaders.Count / nodes.Count;
        result.LeaderDeviation = Math.Max(result.LeaderDeviation, Math.Max(led.Values.Max() - ideal, ideal - led.Values.Min()));
    }

    // Leaderships that must move for every node to lead ⌊S/N⌋ or ⌈S/N⌉: the nodes leading most keep the
    // ⌈S/N⌉ targets, and everything above a node's target moves at least once.
    private static long LowerBound(List<RingNode> nodes, Dictionary<int, int> leaders)
    {
        var led = nodes.ToDictionary(n => n.Id, _ => 0);
        foreach (int leader in leaders.Values) led[leader]++;
        int floor = leaders.Count / nodes.Count, extra = leaders.Count % nodes.Count;
        return led.Values.OrderDescending().Select((l, i) => Math.Max(0, l - (i < extra ? floor + 1 : floor))).Sum();
    }

    private static double Percentile(List<double> values, double q)
    {
        var sorted = values.Order().ToList();
        return sorted[(int)Math.Ceiling(q * sorted.Count) - 1];
    }
}
