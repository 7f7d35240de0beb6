using System.Text.Json;
using System.Text.Json.Serialization;

/// <summary>
/// What the orchestrator asks one load-generator process to do against one running system (one round),
/// written as JSON to a file the load process reads. Every phase is bounded by <see cref="PhaseSeconds"/>
/// and by <see cref="MaxOpsPerPhase"/>.
/// </summary>
internal sealed record LoadSpec
{
    /// <summary>"replication" (node processes), "etcd" (member processes) or "embedded" (a 3-node embedded cluster inside the load process).</summary>
    public required string System { get; init; }
    public int Round { get; init; }
    /// <summary>Client endpoints of the servers, host:port, in server order.</summary>
    public string[] Endpoints { get; init; } = [];
    /// <summary>PIDs of the server processes whose CPU is read (the load process's own for "embedded").</summary>
    public int[] ServerPids { get; init; } = [];
    public string[] ServerNames { get; init; } = [];
    /// <summary>Data folder of the embedded cluster.</summary>
    public string? EmbeddedPath { get; init; }
    public int[] ClientCounts { get; init; } = [1, 16, 64];
    public double PhaseSeconds { get; init; } = 5;
    public int MaxOpsPerPhase { get; init; } = 200_000;
    /// <summary>One client writing right after the cluster formed, reported per second of this length.</summary>
    public int ColdSeconds { get; init; } = 3;
    /// <summary>16 clients writing before the measured phases (so both systems are measured warm).</summary>
    public double WarmupSeconds { get; init; } = 3;
    public double IdleSeconds { get; init; } = 3;
    /// <summary>When after the load the idle CPU is measured a second time (the load's after-effects over).</summary>
    public double SettleSeconds { get; init; } = 15;
    public double ImportSeconds { get; init; } = 5;
    public int ImportBatch { get; init; } = 500;
    /// <summary>Import requests in flight at once from the one importing client: Set-ReplicationKey's default -ThrottleLimit
    /// (KeyWriteCmdlet.DefaultThrottleLimit), so the bench's import is what the cmdlet does.</summary>
    public int ImportInFlight { get; init; } = 2;
    public int MaxImportKeys { get; init; } = 1_000_000;
    public int KeyBytes { get; init; } = 16;
    public int ValueBytes { get; init; } = 256;
    /// <summary>False: every client dials the leader (of most shards); true: clients are spread over the servers round-robin.</summary>
    public bool Spread { get; init; }
    /// <summary>Where the load process writes its <see cref="LoadResult"/>.</summary>
    public required string ResultPath { get; init; }
}

/// <summary>One measured phase: N clients, each issuing one request at a time, for a bounded time.</summary>
internal sealed record PhaseResult
{
    /// <summary>"write", "read", "import", "cold" or "warmup".</summary>
    public required string Kind { get; init; }
    public int Clients { get; init; }
    /// <summary>Operations that succeeded (keys, for an import).</summary>
    public long Ops { get; init; }
    public long Errors { get; init; }
    public string? FirstError { get; init; }
    public double Seconds { get; init; }
    public double OpsPerSecond => Seconds > 0 ? Ops / Seconds : 0;
    /// <summary>Latency of successful requests, milliseconds (a request is one key, or one batch for an import).</summary>
    public double P50 { get; init; }
    public double P99 { get; init; }
    public double P999 { get; init; }
    public double Max { get; init; }
    /// <summary>CPU each server process used over the phase, in <see cref="LoadSpec.ServerPids"/> order.</summary>
    public CpuUse[] ServerCpu { get; init; } = [];
    /// <summary>CPU the load process itself used over the phase.</summary>
    public CpuUse ClientCpu { get; init; } = new(0, 0);
    /// <summary>CPU seconds the rest of the machine used over the phase (every core busy minus the servers and the load process): other work, the noise.</summary>
    public double OtherCpu { get; init; }
    /// <summary><see cref="OtherCpu"/> as a share of the machine's capacity over the phase (cores x seconds), 0..1.</summary>
    public double OtherShare => Seconds > 0 ? OtherCpu / (Seconds * Environment.ProcessorCount) : 0;
}

internal sealed record CpuUse(double User, double System)
{
    public double Total => User + System;
    public static CpuUse From(CpuTime t) => new(Math.Round(t.User, 3), Math.Round(t.System, 3));
}

/// <summary>Everything one round measured for one system.</summary>
internal sealed record LoadResult
{
    public required string System { get; init; }
    public int Round { get; init; }
    /// <summary>Which server the clients dialled, and who led what when the load started and when it ended.</summary>
    public string Placement { get; init; } = "";
    public string LeadersAfter { get; init; } = "";
    public double ConnectMs { get; init; }
    public int ConnectClients { get; init; }
    /// <summary>Import batches the importing client had in flight (1 in results written before this was recorded).</summary>
    public int ImportInFlight { get; init; } = 1;
    /// <summary>Keys per import request (0 in results saved before it was recorded: 500 then).</summary>
    public int ImportBatch { get; init; }
    public List<PhaseResult> Phases { get; init; } = new();
    public double IdleSeconds { get; init; }
    public CpuUse[] IdleCpu { get; init; } = [];
    /// <summary>The same idle measure once the load's after-effects are over (empty in results written before it was recorded).</summary>
    public double SettleSeconds { get; init; }
    public double SettledIdleSeconds { get; init; }
    public CpuUse[] SettledIdleCpu { get; init; } = [];
    public string[] ServerNames { get; init; } = [];
    /// <summary>Filled by the orchestrator: start of each server process to its client port accepting a TCP connection, ms.</summary>
    public double[] StartToListeningMs { get; set; } = [];
    /// <summary>Filled by the orchestrator: start of the first server process to the whole cluster serving, ms.</summary>
    public double StartToReadyMs { get; set; }
}

/// <summary>The whole run: machine, disk reference, every round.</summary>
internal sealed record BenchRun
{
    public required string Machine { get; init; }
    public required string Started { get; init; }
    public bool Quick { get; init; }
    public int[] ClientCounts { get; init; } = [];
    public double PhaseSeconds { get; init; }
    /// <summary>Set when the node processes ran with a diagnostic election timeout (--election-ticks).</summary>
    public int? ElectionTicks { get; init; }
    /// <summary>--store-layout given to the node processes ("node", "shard"); null: the engine's default.</summary>
    public string? StoreLayout { get; init; }
    /// <summary>True when the node processes ran with the runtime's default tiered compilation (--node-tiered), false when with
    /// the README's DOTNET_TieredCompilation=0; null in runs saved before the bench set it (they ran tiered).</summary>
    public bool? NodeTiered { get; init; }
    /// <summary>The node processes' thread-pool spin limit (DOTNET_ThreadPool_UnfairSemaphoreSpinLimit: the service unit's,
    /// or what --node-env gave); null in runs saved before the bench set it (they ran with the runtime's default, 70).</summary>
    public string? NodePoolSpinLimit { get; init; }
    public Dictionary<string, double> Disk { get; init; } = new();
    /// <summary>/proc/loadavg's three averages at the start and at the end of the run (how busy the machine was).</summary>
    public string LoadAverageStart { get; init; } = "";
    public string LoadAverageEnd { get; set; } = "";
    public string EtcdVersion { get; set; } = "";
    public string EtcdNote { get; set; } = "";
    /// <summary>Fresh pwsh + Import-Module + Start-ReplicationNode to listening, ms, with the service unit's environment
    /// (DOTNET_TieredCompilation=0); 0 when not measured.</summary>
    public double PwshStartToListeningMs { get; set; }
    /// <summary>The same with the runtime's defaults (an operator's shell); 0 when not measured (and in runs saved before).</summary>
    public double PwshDefaultStartToListeningMs { get; set; }
    public string PwshNote { get; set; } = "";
    public List<LoadResult> Rounds { get; init; } = new();
}

internal static class Json
{
    public static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };
}
