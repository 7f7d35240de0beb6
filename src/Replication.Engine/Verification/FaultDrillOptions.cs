namespace Replication.Engine.Verification;

/// <summary>
/// How a fault drill runs (<see cref="FaultDrill"/>). Every bound is enforced (<see cref="Validate"/>), so a drill
/// always ends: the workload runs for <see cref="Duration"/> or until <see cref="MaxOperations"/>, the final read-back
/// and the check have their own bounds.
/// </summary>
public sealed record FaultDrillOptions
{
    public static readonly TimeSpan MinDuration = TimeSpan.FromSeconds(5);
    public static readonly TimeSpan MaxDuration = TimeSpan.FromHours(1);
    public const int MaxClients = 64;

    /// <summary>How long the workload runs (faults included): 5 s to 1 h.</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Faults to inject; null = every fault (each target supports all four).</summary>
    public DrillFault? Faults { get; init; }
    /// <summary>Concurrent clients, each with its own connection: 1 to 64.</summary>
    public int Clients { get; init; } = 4;
    /// <summary>Seed of the fault schedule and of the clients' choices; null = a random one (reported, to replay).</summary>
    public int? Seed { get; init; }
    /// <summary>Timeout of each client operation; an unanswered write is then of unknown outcome.</summary>
    public TimeSpan OperationTimeout { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>The workload stops issuing operations after this many, even before <see cref="Duration"/>.</summary>
    public int MaxOperations { get; init; } = 1_000_000;
    /// <summary>Nodes and shards of a cluster the drill creates (a temporary embedded one, or node processes).</summary>
    public int NodeCount { get; init; } = 3;
    public int ShardCount { get; init; } = 4;
    /// <summary>Linearizability search budget per key, and for the whole history; a key past it is Undecided (never a pass).</summary>
    public long CheckStepsPerKey { get; init; } = 5_000_000;
    public long CheckSteps { get; init; } = 200_000_000;
    /// <summary>Receives the drill's events (faults injected and healed, phases) and node events.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>
    /// MUTANT, for the drill's own tests only: every node serves linearizable reads from its local replica
    /// (NodeHost.MutantLocalReads), which must make the drill report violations.
    /// </summary>
    internal bool MutantLocalReads { get; init; }

    /// <summary>Checks the bounds and that <paramref name="supported"/> covers the faults asked for.</summary>
    /// <exception cref="InvalidDrillOptionsException">A bound is out of range, or a fault is not supported by the target.</exception>
    public void Validate(DrillFault supported, string target)
    {
        if (Duration < MinDuration || Duration > MaxDuration)
            throw new InvalidDrillOptionsException($"Duration must be between {MinDuration.TotalSeconds:0} s and {MaxDuration.TotalHours:0} h; got {Duration}.");
        if (Clients is < 1 or > MaxClients) throw new InvalidDrillOptionsException($"Clients must be between 1 and {MaxClients}; got {Clients}.");
        if (OperationTimeout <= TimeSpan.Zero || OperationTimeout > TimeSpan.FromMinutes(1))
            throw new InvalidDrillOptionsException($"OperationTimeout must be positive and at most 1 minute; got {OperationTimeout}.");
        if (MaxOperations < 1) throw new InvalidDrillOptionsException("MaxOperations must be positive.");
        if (NodeCount is < 3 or > 9) throw new InvalidDrillOptionsException($"A drill cluster has 3 to 9 nodes (one fails at a time, the others keep a quorum); got {NodeCount}.");
        if (ShardCount is < 1 or > 64) throw new InvalidDrillOptionsException($"ShardCount must be between 1 and 64; got {ShardCount}.");
        if (CheckStepsPerKey < 1 || CheckSteps < 1) throw new InvalidDrillOptionsException("The check budgets must be positive.");
        if (Faults is { } asked && (asked & ~supported) != 0)
            throw new InvalidDrillOptionsException($"{target} supports the faults {supported}; {asked & ~supported} cannot be injected there.");
    }
}
