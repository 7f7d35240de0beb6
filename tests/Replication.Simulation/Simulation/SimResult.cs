using Replication.Engine.Verification;

namespace Replication.Simulation.Simulation;

/// <summary>The outcome of one seed: what was run and injected, and every violation found (none when correct).</summary>
public sealed class SimResult
{
    public required SimOptions Options { get; init; }
    public List<string> Violations { get; } = new();
    public List<HistoryOp> History { get; } = new();
    public SortedDictionary<string, long> Faults { get; } = new(StringComparer.Ordinal);
    /// <summary>The event trace when <see cref="SimOptions.Trace"/> is on (faults are always listed).</summary>
    public List<string> Trace { get; } = new();
    /// <summary>A digest of every event in order: equal digests mean the same run.</summary>
    public ulong Digest { get; set; }
    public long EndTime { get; set; }
    public CheckResult? Check { get; set; }
    /// <summary>Ticks from healing until the first write invoked after it was acknowledged (the availability check).</summary>
    public long TicksToProgress { get; set; }

    public bool Ok => Violations.Count == 0;
    public int OperationsChecked => History.Count(o => o.Status != OpStatus.Failed);

    /// <summary>One command line that replays this seed exactly.</summary>
    public string ReplayCommand =>
        $"./build.ps1 Simulate -Seed {Options.Seed}{(Options.Mutant == Mutant.None ? "" : " -Mutant " + Options.Mutant)}";
}
