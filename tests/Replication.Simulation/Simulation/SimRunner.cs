using Replication.Simulation.Linearizability;

namespace Replication.Simulation.Simulation;

/// <summary>Totals over many seeds, as printed by <c>./build.ps1 Simulate</c>.</summary>
public sealed class SimSummary
{
    public int SeedsRun { get; set; }
    public long OperationsChecked { get; set; }
    public long LogicalTicks { get; set; }
    public int InconclusiveChecks { get; set; }
    public SortedDictionary<string, long> Faults { get; } = new(StringComparer.Ordinal);
    public List<SimResult> Failures { get; } = new();
    public int Violations => Failures.Sum(f => f.Violations.Count);
}

/// <summary>
/// Runs seeds and summarises them; shared by the console runner and the xunit suite, so CI runs
/// exactly what an engineer runs. Stateless.
/// </summary>
public static class SimRunner
{
    /// <summary>
    /// Runs seeds <paramref name="firstSeed"/> .. firstSeed+count-1, writing one line per failing
    /// seed (with its replay command) to <paramref name="log"/>. <paramref name="stopAtFirstFailure"/>:
    /// stop as soon as one seed fails (used by the mutant tests to count seeds until caught).
    /// </summary>
    public static SimSummary Run(int firstSeed, int count, Mutant mutant, TextWriter? log, bool stopAtFirstFailure = false)
    {
        var summary = new SimSummary();
        for (int i = 0; i < count; i++)
        {
            var result = Simulator.Run(SimOptions.FromSeed(firstSeed + i, mutant));
            Add(summary, result);
            if (!result.Ok)
            {
                log?.WriteLine($"seed {result.Options.Seed} FAILED: {result.Violations[0].Split('\n')[0]}");
                log?.WriteLine($"  replay: {result.ReplayCommand}");
                if (stopAtFirstFailure) break;
            }
        }
        return summary;
    }

    public static void Add(SimSummary summary, SimResult result)
    {
        summary.SeedsRun++;
        summary.OperationsChecked += result.OperationsChecked;
        summary.LogicalTicks += result.EndTime / SimOptions.TickUnits;
        if (result.Check?.Outcome == CheckOutcome.Unknown) summary.InconclusiveChecks++;
        foreach (var (k, v) in result.Faults) summary.Faults[k] = summary.Faults.GetValueOrDefault(k) + v;
        if (!result.Ok) summary.Failures.Add(result);
    }

    public static void Print(SimSummary s, TextWriter w)
    {
        w.WriteLine($"seeds run:           {s.SeedsRun}");
        w.WriteLine($"operations checked:  {s.OperationsChecked}");
        w.WriteLine($"logical ticks:       {s.LogicalTicks}");
        w.WriteLine($"faults injected:     {s.Faults.Values.Sum()}");
        foreach (var (k, v) in s.Faults) w.WriteLine($"  {k,-22} {v}");
        if (s.InconclusiveChecks > 0) w.WriteLine($"inconclusive checks: {s.InconclusiveChecks} (search budget exhausted)");
        w.WriteLine($"violations:          {s.Violations}");
        foreach (var f in s.Failures) w.WriteLine($"  seed {f.Options.Seed}: replay with {f.ReplayCommand}");
    }
}
