/// <summary>
/// The orchestrator's command line (./build.ps1 Bench passes these). Every duration has a bound so the whole
/// run is bounded: the default run takes about 5 minutes on the 2-core VM; --quick (one round, 1-second
/// phases, no embedded round, no pwsh start-up timing) about 1 minute.
/// </summary>
internal sealed record BenchOptions
{
    public bool Quick { get; init; }
    /// <summary>Rounds per system; systems alternate within each round (Replication, etcd, Replication, etcd, ...).</summary>
    public int Rounds { get; init; } = 2;
    public int[] Clients { get; init; } = [1, 16, 64];
    public double PhaseSeconds { get; init; } = 5;
    public int ColdSeconds { get; init; } = 3;
    public double WarmupSeconds { get; init; } = 3;
    public double IdleSeconds { get; init; } = 3;
    public double SettleSeconds { get; init; } = 15;
    /// <summary>Length of the import phase (--import-seconds; bounded by LoadSpec.MaxImportKeys too).</summary>
    public double ImportSeconds { get; init; } = 5;
    /// <summary>Import batches in flight from the one importing client (--import-in-flight; default: Set-ReplicationKey's -ThrottleLimit default).</summary>
    public int ImportInFlight { get; init; } = 2;
    /// <summary>Keys per import request (--import-batch; default: what Set-ReplicationKey sends per engine call, KeyWriteCmdlet.BatchSize),
    /// and etcd's --max-txn-ops, so its import transactions hold as many puts.</summary>
    public int ImportBatch { get; init; } = 500;
    public double DiskProbeSeconds { get; init; } = 3;
    public bool Spread { get; init; }
    public bool Etcd { get; init; } = true;
    /// <summary>Install Debian's etcd-server with apt-get when no etcd binary is found (needs root and the mirror).</summary>
    public bool InstallEtcd { get; init; } = true;
    public bool Embedded { get; init; } = true;
    /// <summary>Time Start-ReplicationNode in a fresh pwsh (needs <see cref="Module"/> and <see cref="Pwsh"/>).</summary>
    public bool PwshStart { get; init; } = true;
    public string OutDir { get; init; } = Path.Combine("out", "bench");
    /// <summary>Replication.psd1 and pwsh.dll, to time Start-ReplicationNode in a fresh pwsh (skipped when either is missing).</summary>
    public string? Module { get; init; }
    public string? Pwsh { get; init; }
    public bool Verbose { get; init; }
    /// <summary>A saved results.json to render again (tables, chart) instead of measuring.</summary>
    public string? Report { get; init; }
    /// <summary>Diagnostic: the node processes' election timeout in ticks (NodeOptions.ElectionTicks); null = the engine's default.</summary>
    public int? ElectionTicks { get; init; }
    /// <summary>Run one scenario alone: "main" (the rounds of writes, reads and imports, against etcd unless --no-etcd), "ring" (RingScenario.cs), "failover" (FailoverScenario), "timing" (TimingScenario, opt-in,
    /// minutes long) or "snapshot-parts" (SnapshotPartsScenario: the parts of a move's copy timed alone, in process); null = the
    /// whole bench, the ring and failover scenarios last.</summary>
    public string? Only { get; init; }
    /// <summary>Megabytes of rows in the shard the ring scenario moves.</summary>
    public int RingMegabytes { get; init; } = 32;
    /// <summary>How many times the ring scenario moves its shard's replica away and back (a pin, then an unpin, each a move
    /// with writes continuing): one move holds a few hundred writes, so a goal on their p99 needs several moves to judge.</summary>
    public int RingMovePairs { get; init; } = 1;
    /// <summary>Diagnostic: the ring scenario's nodes' snapshot chunk size (NodeOptions.SnapshotChunkBytes); null = the engine's default.</summary>
    public int? SnapshotChunkBytes { get; init; }
    /// <summary>The node processes' state layout, in the main scenario and the ring scenario (NodeOptions.StoreLayout: "node" one
    /// state.db, "shard" a file per shard, whose moves copy an image of the shard's file); null = the engine's default.</summary>
    public string? StoreLayout { get; init; }
    /// <summary>Runs of each failover scenario (kill, pause; switchover: of every shard).</summary>
    public int FailoverRuns { get; init; } = 3;
    /// <summary>Timing scenario: election timeouts to try (ms), minutes per phase (idle, loaded), leader kills per timeout.</summary>
    public int[] ElectionMs { get; init; } = [Replication.Engine.Cluster.RaftTiming.DefaultElectionTimeoutMilliseconds];
    public double TimingMinutes { get; init; } = 10;
    public int TimingKills { get; init; } = 5;
    /// <summary>Diagnostic (--node-tiered): run the node processes with the runtime's default tiered compilation instead of
    /// DOTNET_TieredCompilation=0, the setting the README recommends for a node process (<see cref="Servers.NodeEnvironment"/>).</summary>
    public bool NodeTiered { get; init; }
    /// <summary>Diagnostic (--node-env K=V,K=V): more environment variables for the node processes only (not the load
    /// process, so etcd and Replication still share one load generator), to measure a runtime setting.</summary>
    public IReadOnlyDictionary<string, string> NodeEnv { get; init; } = new Dictionary<string, string>();

    public const string Usage =
        "usage: Replication.Bench [--quick] [--rounds N] [--clients 1,16,64] [--phase-seconds S] [--spread] [--no-etcd] [--no-install]\n" +
        "                         [--no-embedded] [--out DIR] [--module Replication.psd1 --pwsh pwsh.dll] [--verbose] [--election-ticks N]\n" +
        "                         [--only main|ring|failover|timing|snapshot-parts] [--ring-mb N] [--ring-move-pairs N] [--snapshot-chunk-bytes N]\n" +
        "                         [--store-layout node|shard]\n" +
        "                         [--failover-runs N] [--election-ms 150,300] [--timing-minutes M] [--timing-kills N] [--import-in-flight N]\n" +
        "                         [--node-tiered] [--node-env K=V,K=V] [--import-seconds S] [--import-batch N]\n" +
        "       Replication.Bench --report out/bench/results.json [--out DIR]   (render a saved run again)";

    public static BenchOptions Parse(string[] args)
    {
        string? Value(string name)
        {
            int i = Array.IndexOf(args, name);
            if (i < 0) return null;
            return i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"{name} needs a value.\n{Usage}");
        }
        bool Flag(string name) => args.Contains(name);

        var known = new HashSet<string> { "--quick", "--rounds", "--clients", "--phase-seconds", "--spread", "--no-etcd", "--no-install", "--no-embedded", "--out", "--module", "--pwsh", "--verbose", "--election-ticks", "--report", "--only", "--ring-mb", "--ring-move-pairs", "--snapshot-chunk-bytes", "--store-layout", "--failover-runs", "--election-ms", "--timing-minutes", "--timing-kills", "--import-in-flight", "--node-tiered", "--node-env", "--import-seconds", "--import-batch" };
        for (int i = 0; i < args.Length; i++)
        {
            if (!known.Contains(args[i])) throw new ArgumentException($"unknown argument '{args[i]}'.\n{Usage}");
            if (args[i] is "--rounds" or "--clients" or "--phase-seconds" or "--out" or "--module" or "--pwsh" or "--election-ticks" or "--report"
                or "--only" or "--ring-mb" or "--ring-move-pairs" or "--snapshot-chunk-bytes" or "--store-layout" or "--failover-runs" or "--election-ms" or "--timing-minutes" or "--timing-kills" or "--import-in-flight" or "--node-env" or "--import-seconds" or "--import-batch") i++;
        }

        var o = Flag("--quick")
            ? new BenchOptions { Quick = true, Rounds = 1, PhaseSeconds = 1, ColdSeconds = 1, WarmupSeconds = 1, IdleSeconds = 1, SettleSeconds = 3, ImportSeconds = 1.5, DiskProbeSeconds = 1, Embedded = false, PwshStart = false }
            : new BenchOptions();
        if (Value("--rounds") is { } r) o = o with { Rounds = Math.Clamp(int.Parse(r), 1, 10) };
        if (Value("--phase-seconds") is { } p) o = o with { PhaseSeconds = Math.Clamp(double.Parse(p, System.Globalization.CultureInfo.InvariantCulture), 0.5, 60) };
        if (Value("--clients") is { } c)
            o = o with { Clients = c.Split(',').Select(x => Math.Clamp(int.Parse(x), 1, 256)).Distinct().Order().ToArray() };
        return o with
        {
            Spread = Flag("--spread"),
            Etcd = !Flag("--no-etcd"),
            InstallEtcd = !Flag("--no-install"),
            Embedded = o.Embedded && !Flag("--no-embedded"),
            OutDir = Value("--out") ?? o.OutDir,
            Module = Value("--module"),
            Pwsh = Value("--pwsh"),
            Verbose = Flag("--verbose"),
            Report = Value("--report"),
            ElectionTicks = Value("--election-ticks") is { } t ? Math.Clamp(int.Parse(t), 2, 10_000) : null,
            Only = Value("--only") is { } only ? (only is "main" or "ring" or "failover" or "timing" or "snapshot-parts" ? only : throw new ArgumentException($"--only takes main, ring, failover, timing or snapshot-parts.\n{Usage}")) : null,
            SnapshotChunkBytes = Value("--snapshot-chunk-bytes") is { } cb ? Math.Clamp(int.Parse(cb), 64, 8 << 20) : null,
            StoreLayout = Value("--store-layout") is { } sl ? (sl is "node" or "shard" ? sl : throw new ArgumentException($"--store-layout takes node or shard.\n{Usage}")) : null,
            RingMegabytes = Value("--ring-mb") is { } mb ? Math.Clamp(int.Parse(mb), 1, 1024) : o.Quick ? 8 : 32,
            RingMovePairs = Value("--ring-move-pairs") is { } pairs ? Math.Clamp(int.Parse(pairs), 1, 20) : o.RingMovePairs,
            FailoverRuns = Value("--failover-runs") is { } fr ? Math.Clamp(int.Parse(fr), 1, 20) : o.Quick ? 1 : 3,
            ElectionMs = Value("--election-ms") is { } em ? em.Split(',').Select(x => Math.Clamp(int.Parse(x), 30, 10_000)).ToArray() : o.ElectionMs,
            TimingMinutes = Value("--timing-minutes") is { } tm ? Math.Clamp(double.Parse(tm, System.Globalization.CultureInfo.InvariantCulture), 0.1, 60) : o.TimingMinutes,
            ImportInFlight = Value("--import-in-flight") is { } inf ? Math.Clamp(int.Parse(inf), 1, 64) : o.ImportInFlight,
            ImportSeconds = Value("--import-seconds") is { } isec ? Math.Clamp(double.Parse(isec, System.Globalization.CultureInfo.InvariantCulture), 0.5, 60) : o.ImportSeconds,
            ImportBatch = Value("--import-batch") is { } ib ? Math.Clamp(int.Parse(ib), 1, 10_000) : o.ImportBatch,
            TimingKills = Value("--timing-kills") is { } tk ? Math.Clamp(int.Parse(tk), 1, 20) : o.TimingKills,
            NodeTiered = Flag("--node-tiered"),
            NodeEnv = Value("--node-env") is { } ne
                ? ne.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(kv => kv.Split('=', 2)).ToDictionary(
                    kv => kv[0], kv => kv.Length == 2 ? kv[1] : throw new ArgumentException($"--node-env takes K=V pairs.\n{Usage}"))
                : o.NodeEnv,
        };
    }
}
