using System.Diagnostics;
using Replication.Simulation.Placement;
using Replication.Simulation.Simulation;

// Console runner for the deterministic simulator: ./build.ps1 Simulate -Seeds N [-Seed S] [-Mutant M]
// Seeds run in parallel, one worker per processor (SimRunner); what it prints does not depend on it.
//   --seeds N      run seeds 1..N (default 200), or S..S+N-1 with --seed
//   --seed S       replay seed S alone (with its fault trace), unless --seeds is also given
//   --mutant M     run a deliberately broken system (see Mutant.cs) to watch it get caught
//   --trace        with --seed: print every event
//   --placement    run the placement simulation (ring, move planner, leader balancer) instead of Raft
//                  seeds (./build.ps1 Simulate -Placement); with --seed S, S seeds it (default 1)
//   --sweep        with --placement: the tokens-per-node x load-bound measurement behind the ring's defaults
//   --workers W    worker threads (default: one per processor); the output does not depend on it
// Exit code: 0 when no violation, 1 on any violation, 2 on bad arguments.
int? seed = null;
int? seeds = null;
var mutant = Mutant.None;
bool trace = false;
bool placement = false;
bool sweep = false;
int workers = 0;
for (int i = 0; i < args.Length; i++)
{
    string a = args[i];
    string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{a} needs a value");
    try
    {
        switch (a)
        {
            case "--seed": seed = int.Parse(Value()); break;
            case "--seeds": seeds = int.Parse(Value()); break;
            case "--mutant": mutant = Enum.Parse<Mutant>(Value(), ignoreCase: true); break;
            case "--trace": trace = true; break;
            case "--placement": placement = true; break;
            case "--sweep": sweep = true; break;
            case "--workers": workers = int.Parse(Value()); break;
            default: throw new ArgumentException($"unknown argument {a}");
        }
    }
    catch (Exception ex) when (ex is ArgumentException or FormatException)
    {
        Console.Error.WriteLine(ex.Message);
        Console.Error.WriteLine("usage: Replication.Simulation [--seeds N] [--seed S] [--mutant M] [--trace] [--workers W] | --placement [--seed S] [--sweep]");
        return 2;
    }
}

var clock = Stopwatch.StartNew(); // reports elapsed time only; the simulation never reads it
if (placement)
{
    if (sweep) PlacementSimulation.Sweep(Console.Out, seed ?? 1);
    var placementResults = sweep ? [] : PlacementSimulation.RunStandard(Console.Out, seed ?? 1);
    Console.WriteLine($"time: {clock.Elapsed.TotalSeconds:F1} s");
    return placementResults.Sum(r => r.Violations.Count) == 0 ? 0 : 1;
}
if (seed is int one && seeds is null)
{
    var result = Simulator.Run(SimOptions.FromSeed(one, mutant, trace));
    Console.WriteLine(result.Options);
    foreach (var line in result.Trace) Console.WriteLine(line);
    Console.WriteLine($"digest {result.Digest:x16}; {result.History.Count} operations; end at tick {result.EndTime / SimOptions.TickUnits}; check: {result.Check?.Outcome.ToString() ?? "not run"}");
    var summary = new SimSummary();
    summary.Add(result);
    foreach (var v in result.Violations) Console.WriteLine("violation: " + v);
    SimRunner.Print(summary, Console.Out);
    Console.WriteLine($"time: {clock.Elapsed.TotalSeconds:F1} s");
    return result.Ok ? 0 : 1;
}

int first = seed ?? 1;
var all = SimRunner.Run(first, seeds ?? 200, mutant, Console.Out, workers: workers);
SimRunner.Print(all, Console.Out);
Console.WriteLine($"time: {clock.Elapsed.TotalSeconds:F1} s");
return all.Violations == 0 ? 0 : 1;
