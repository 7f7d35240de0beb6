namespace Replication.Simulation.Simulation;

/// <summary>
/// Totals over many seeds, as printed by <c>./build.ps1 Simulate</c>. Every total is a sum (or a
/// maximum) over seeds, so merging per-worker summaries gives the same figures whatever the order
/// or the number of workers. Not thread-safe: each worker fills its own, then they are merged.
/// </summary>
public sealed class SimSummary
{
    public int SeedsRun { get; set; }
    public long OperationsChecked { get; set; }
    public long LogicalTicks { get; set; }
    /// <summary>Seeds whose history the checker could not decide within its budget (each is also a failure).</summary>
    public int UndecidedChecks { get; set; }
    /// <summary>The most search steps one seed's linearizability check took (the budget is <see cref="Replication.Engine.Verification.LinearizabilityChecker.DefaultMaxSteps"/>).</summary>
    public long MaxCheckSteps { get; set; }
    /// <summary>The most ticks a healed cluster took to acknowledge a write (see <see cref="SimResult.TicksToProgress"/>).</summary>
    public long MaxTicksToProgress { get; set; }
    public SortedDictionary<string, long> Faults { get; } = new(StringComparer.Ordinal);
    /// <summary>The failing seeds, ascending.</summary>
    public List<SimFailure> Failures { get; } = new();
    public int Violations => Failures.Count;

    /// <summary>Adds one seed's outcome.</summary>
    public void Add(SimResult result)
    {
        SeedsRun++;
        OperationsChecked += result.OperationsChecked;
        LogicalTicks += result.EndTime / SimOptions.TickUnits;
        if (result.Check is { } check)
        {
            if (check.Outcome == Replication.Engine.Verification.CheckOutcome.Undecided) UndecidedChecks++;
            MaxCheckSteps = Math.Max(MaxCheckSteps, check.Steps);
        }
        MaxTicksToProgress = Math.Max(MaxTicksToProgress, result.TicksToProgress);
        foreach (var (k, v) in result.Faults) Faults[k] = Faults.GetValueOrDefault(k) + v;
        if (!result.Ok) Failures.Add(new SimFailure(result.Options.Seed, result.Violations[0], result.ReplayCommand, result.Digest));
    }

    /// <summary>Adds another summary's totals (over seeds this one has not counted).</summary>
    public void Merge(SimSummary other)
    {
        SeedsRun += other.SeedsRun;
        OperationsChecked += other.OperationsChecked;
        LogicalTicks += other.LogicalTicks;
        UndecidedChecks += other.UndecidedChecks;
        MaxCheckSteps = Math.Max(MaxCheckSteps, other.MaxCheckSteps);
        MaxTicksToProgress = Math.Max(MaxTicksToProgress, other.MaxTicksToProgress);
        foreach (var (k, v) in other.Faults) Faults[k] = Faults.GetValueOrDefault(k) + v;
        Failures.AddRange(other.Failures);
        Failures.Sort((a, b) => a.Seed.CompareTo(b.Seed));
    }
}
