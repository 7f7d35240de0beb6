namespace Replication.Simulation.Simulation;

/// <summary>
/// Runs seeds and summarises them; shared by the console runner and the xunit suite, so CI runs
/// exactly what an engineer runs. Seeds run in parallel on worker threads (each seed is its own
/// deterministic simulation with no shared state), and everything reported is independent of the
/// number of workers and of their timing: totals are sums, failures are listed by seed, and a run
/// that stops at the first failure stops at the lowest failing seed. Thread-safe (stateless).
/// </summary>
public static class SimRunner
{
    /// <summary>
    /// Runs seeds <paramref name="firstSeed"/> .. firstSeed+count-1 on <paramref name="workers"/>
    /// threads (default: one per processor), then writes one line per failing seed, with its replay
    /// command, to <paramref name="log"/>. <paramref name="stopAtFirstFailure"/>: only the seeds up
    /// to the lowest failing one count (used by the mutant tests to count seeds until caught).
    /// </summary>
    public static SimSummary Run(int firstSeed, int count, Mutant mutant, TextWriter? log, bool stopAtFirstFailure = false, int workers = 0)
    {
        int threads = Math.Clamp(workers > 0 ? workers : Environment.ProcessorCount, 1, Math.Max(1, count));
        // Per seed when stopping early (the counts are small then), so the totals can be cut at the
        // lowest failing seed; per worker otherwise (100,000 seeds keep no per-seed state).
        var perSeed = stopAtFirstFailure ? new SimSummary?[count] : null;
        var perWorker = new SimSummary[threads];
        int next = -1;
        int lowestFailure = int.MaxValue;
        var pool = Enumerable.Range(0, threads).Select(w => new Thread(() =>
        {
            var mine = perWorker[w] = new SimSummary();
            int i;
            while ((i = Interlocked.Increment(ref next)) < count && i < Volatile.Read(ref lowestFailure))
            {
                var result = Simulator.Run(SimOptions.FromSeed(firstSeed + i, mutant));
                var target = mine;
                if (perSeed is not null) target = perSeed[i] = new SimSummary();
                target.Add(result);
                if (!result.Ok && stopAtFirstFailure) InterlockedMin(ref lowestFailure, i);
            }
        }) { IsBackground = true, Name = $"sim-worker-{w}" }).ToList();
        pool.ForEach(t => t.Start());
        pool.ForEach(t => t.Join());

        var summary = new SimSummary();
        if (perSeed is not null)
        {
            // Every seed below the lowest failure ran (workers take seeds in order), so this prefix is exact.
            for (int i = 0; i < count && i <= lowestFailure; i++) summary.Merge(perSeed[i]!);
        }
        else
        {
            foreach (var s in perWorker) summary.Merge(s);
        }
        foreach (var f in summary.Failures)
        {
            log?.WriteLine($"seed {f.Seed} FAILED: {f.Violation.Split('\n')[0]}");
            log?.WriteLine($"  replay: {f.ReplayCommand}");
        }
        return summary;
    }

    private static void InterlockedMin(ref int target, int value)
    {
        int seen;
        while (value < (seen = Volatile.Read(ref target)) && Interlocked.CompareExchange(ref target, value, seen) != seen) { }
    }

    public static void Print(SimSummary s, TextWriter w)
    {
        w.WriteLine($"seeds run:           {s.SeedsRun}");
        w.WriteLine($"operations checked:  {s.OperationsChecked}");
        w.WriteLine($"logical ticks:       {s.LogicalTicks}");
        w.WriteLine($"faults injected:     {s.Faults.Values.Sum()}");
        foreach (var (k, v) in s.Faults) w.WriteLine($"  {k,-30} {v}");
        w.WriteLine($"undecided checks:    {s.UndecidedChecks} (each counts as a violation; hardest history took {s.MaxCheckSteps} of {Replication.Engine.Verification.LinearizabilityChecker.DefaultMaxSteps} steps)");
        w.WriteLine($"progress after heal: every healed cluster acknowledged a write within {s.MaxTicksToProgress} ticks");
        w.WriteLine($"violations:          {s.Violations}");
        foreach (var f in s.Failures) w.WriteLine($"  seed {f.Seed}: replay with {f.ReplayCommand}");
    }
}
