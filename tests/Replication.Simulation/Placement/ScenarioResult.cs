namespace Replication.Simulation.Placement;

/// <summary>
/// What one scenario measured (<see cref="PlacementSimulation.Run"/>). Mutable while the scenario
/// runs; not thread-safe.
/// </summary>
public sealed class ScenarioResult(PlacementScenario scenario)
{
    public PlacementScenario Scenario { get; } = scenario;

    /// <summary>Membership changes run.</summary>
    public int Changes { get; set; }

    /// <summary>Worst (highest) max/mean of voters held per node over every state reached.</summary>
    public double SpreadMax { get; set; }

    /// <summary>Worst max over what the zones force: the largest load over the least largest load any
    /// placement with one voter per zone per shard could have (the mean when zones do not constrain).
    /// Above 1 + LoadBound only where the ring, not the zones, is to blame.</summary>
    public double SpreadOverForced { get; set; }

    /// <summary>Worst (lowest) min/mean of voters held per node over every state reached.</summary>
    public double SpreadMin { get; set; } = double.MaxValue;

    /// <summary>Per change: voter replicas whose node changed between the two ring placements, over the ideal
    /// (a join of k nodes to N: replicas·k/(N+k); a leave: what the leaving nodes held).</summary>
    public List<double> MovementRatios { get; } = new();

    /// <summary>Learners added by the planner's steps, summed over changes (each is one replica copied).</summary>
    public long Copies { get; set; }

    /// <summary>Voter replicas that changed node between consecutive ring placements, summed over changes.</summary>
    public long Moved { get; set; }

    /// <summary>Most shards in motion at once while the planner ran.</summary>
    public int MaxInMotion { get; set; }

    /// <summary>Worst distance of any node's leader count from S/N after leader balancing, over every change.</summary>
    public double LeaderDeviation { get; set; }

    /// <summary>Leader transfers planned, summed over changes.</summary>
    public long Transfers { get; set; }

    /// <summary>Lower bound of the transfers needed (leaderships above a node's ⌊S/N⌋/⌈S/N⌉ target), summed.</summary>
    public long TransferLowerBound { get; set; }

    /// <summary>Shards holding two voters in one zone while the cluster had at least ReplicationFactor zones, summed over states.</summary>
    public long ZoneViolations { get; set; }

    /// <summary>Broken promises of the planner or balancer: a step below quorum, a placement not reached, a plan
    /// that is not empty after being applied. Each is described.</summary>
    public List<string> Violations { get; } = new();
}
