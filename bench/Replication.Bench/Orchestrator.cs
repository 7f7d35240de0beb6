using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;

/// <summary>
/// The bench run (./build.ps1 Bench): the disk's own limits, then rounds in which the systems alternate
/// (Replication's three node processes, then etcd's three members, again), each driven by a fresh load
/// process with the same load; then the embedded cluster once; then the report (text, JSON, HTML/SVG).
/// Every server and load process is this run's child and is killed when its round ends, also on failure.
/// </summary>
internal sealed class Orchestrator
{
    private readonly BenchOptions _options;
    private readonly string _temp = Path.Combine(Path.GetTempPath(), "replication-bench-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly string _secret = Convert.ToHexString(RandomNumberGenerator.GetBytes(24));

    private Orchestrator(BenchOptions options) => _options = options;

    public static async Task<int> RunAsync(string[] args)
    {
        BenchOptions options;
        try { options = BenchOptions.Parse(args); }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            Console.Error.WriteLine(e.Message);
            return 64;
        }
        Servers.NodeTiered = options.NodeTiered;
        Servers.NodeEnv = options.NodeEnv;
        if (options.Report is { } saved)
        {
            // Re-renders a saved run (its results.json) without measuring anything.
            WriteReport(JsonSerializer.Deserialize<BenchRun>(File.ReadAllText(saved), Json.Options)!, options.OutDir);
            return 0;
        }
        var orchestrator = new Orchestrator(options);
        // A signal ends the process without running finally blocks: clean up in the handler too.
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, _ => orchestrator.CleanUp());
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => orchestrator.CleanUp());
        using var hangUp = PosixSignalRegistration.Create(PosixSignal.SIGHUP, _ => orchestrator.CleanUp());
        try
        {
            return await orchestrator.RunAsync();
        }
        finally
        {
            orchestrator.CleanUp();
        }
    }

    /// <summary>Kills every child process and deletes this run's temp folder (data, specs, logs). Safe to call twice.</summary>
    private void CleanUp()
    {
        ChildProcess.KillAll();
        // A process killed a moment ago may still have been creating files: try again briefly.
        for (int attempt = 0; attempt < 5 && Directory.Exists(_temp); attempt++)
        {
            try { Directory.Delete(_temp, recursive: true); }
            catch (IOException) { Thread.Sleep(100); }
            catch (UnauthorizedAccessException) { Thread.Sleep(100); }
        }
    }

    private async Task<int> RunAsync()
    {
        var total = Stopwatch.StartNew();
        Directory.CreateDirectory(_temp);
        var run = new BenchRun { Machine = Machine.Describe(_temp), Started = DateTimeOffset.Now.ToString("yyyy-MM-dd HH:mm zzz"), Quick = _options.Quick, LoadAverageStart = Machine.LoadAverage(),
            ClientCounts = _options.Clients, PhaseSeconds = _options.PhaseSeconds, ElectionTicks = _options.ElectionTicks, StoreLayout = _options.StoreLayout, NodeTiered = _options.NodeTiered,
            NodePoolSpinLimit = Servers.NodeEnvironment("").GetValueOrDefault(Servers.PoolSpinVariable) };
        Console.WriteLine($"Replication bench{(_options.Quick ? " (quick)" : "")}: {run.Machine}");
        Console.WriteLine($"data and logs under {_temp}; results to {Path.GetFullPath(_options.OutDir)}");
        if (_options.Only == "ring")
        {
            RingReport.Write(await new RingScenario(_options, Path.Combine(_temp, "ring"), _secret).RunAsync(), _options.OutDir);
            return 0;
        }
        if (_options.Only == "snapshot-parts") return SnapshotPartsScenario.Run(_options, Path.Combine(_temp, "snapshot-parts"));
        if (_options.Only is not null and not "main") return await ScenarioAlone.RunAsync(_options, _temp, _secret);
        var probe = TimeSpan.FromSeconds(_options.DiskProbeSeconds);
        string probeDir = Path.Combine(_temp, "disk");
        Directory.CreateDirectory(probeDir);
        run.Disk["fsyncsPerSecondAtStart"] = PhysicalLimits.FsyncsPerSecond(probeDir, 50_000, probe);
        run.Disk["sqliteOneRowCommitsPerSecond"] = PhysicalLimits.SqliteRowsPerSecond(probeDir, 1, 20_000, probe);
        run.Disk["sqlite1000RowBatchRowsPerSecond"] = PhysicalLimits.SqliteRowsPerSecond(probeDir, 1000, 1_000_000, probe);
        Console.WriteLine($"disk: {run.Disk["fsyncsPerSecondAtStart"]:N0} fsyncs/s (4 KiB write + fsync), raw SQLite {run.Disk["sqliteOneRowCommitsPerSecond"]:N0} one-row commits/s, {run.Disk["sqlite1000RowBatchRowsPerSecond"]:N0} rows/s in 1000-row batches");

        string? etcd = null;
        if (_options.Etcd)
        {
            etcd = EtcdBinary.Find(_options.InstallEtcd, Console.WriteLine, out string note);
            run.EtcdNote = note;
            if (etcd is not null) run.EtcdVersion = EtcdBinary.Version(etcd);
        }
        else run.EtcdNote = "etcd skipped (--no-etcd)";
        Console.WriteLine(etcd is null
            ? $"etcd: NOT AVAILABLE ({run.EtcdNote}); the disk's limits above are the reference"
            : $"etcd: {etcd} ({run.EtcdVersion}){(run.EtcdNote.Length > 0 ? ", " + run.EtcdNote : "")}");

        await PwshStartAsync(run);

        for (int round = 1; round <= _options.Rounds; round++)
        {
            run.Rounds.Add(await RoundAsync("replication", round, etcd));
            if (etcd is not null) run.Rounds.Add(await RoundAsync("etcd", round, etcd));
        }
        if (_options.Embedded) run.Rounds.Add(await RoundAsync("embedded", 1, etcd));
        if (_options.Only is null) await ScenarioAlone.FailoverAsync(_options, _temp, _secret);

        run.Disk["fsyncsPerSecondAtEnd"] = PhysicalLimits.FsyncsPerSecond(probeDir, 50_000, probe);
        run.LoadAverageEnd = Machine.LoadAverage();
        Console.WriteLine($"disk at the end: {run.Disk["fsyncsPerSecondAtEnd"]:N0} fsyncs/s");

        WriteReport(run, _options.OutDir);
        if (_options.Only == "main") return 0; // the rounds alone (--only main)
        RingReport.Write(await new RingScenario(_options, Path.Combine(_temp, "ring"), _secret).RunAsync(), _options.OutDir);
        Console.WriteLine($"(run took {total.Elapsed.TotalSeconds:0} s)");
        return 0;
    }

    /// <summary>Prints the report and writes bench.txt, bench.html, bench.svg and results.json to <paramref name="outDir"/>.</summary>
    private static void WriteReport(BenchRun run, string outDir)
    {
        Directory.CreateDirectory(outDir);
        string text = Report.Text(run);
        File.WriteAllText(Path.Combine(outDir, "bench.txt"), text);
        File.WriteAllText(Path.Combine(outDir, "results.json"), JsonSerializer.Serialize(run, Json.Options));
        File.WriteAllText(Path.Combine(outDir, "bench.svg"), Report.Svg(run));
        File.WriteAllText(Path.Combine(outDir, "bench.html"), Report.Html(run, text));
        Console.WriteLine();
        Console.WriteLine(text);
        Console.WriteLine($"wrote {Path.Combine(outDir, "bench.txt")}, bench.html, bench.svg and results.json");
    }

    /// <summary>One round of one system: fresh servers (none for "embedded"), one load process, everything killed after.</summary>
    private async Task<LoadResult> RoundAsync(string system, int round, string? etcd)
    {
        Console.WriteLine();
        Console.WriteLine($"== round {round}: {system} ==");
        string folder = Path.Combine(_temp, $"{system}-{round}");
        Directory.CreateDirectory(folder);
        Action<string>? echo = _options.Verbose ? Console.WriteLine : null;
        int importBatch = _options.ImportBatch;
        Servers? servers = null;
        try
        {
            servers = system switch
            {
                "replication" => await Servers.StartReplicationAsync(Path.Combine(folder, "data"), _secret, _options.ElectionTicks, _options.StoreLayout, echo),
                "etcd" => await Servers.StartEtcdAsync(etcd!, Path.Combine(folder, "data"), importBatch, echo),
                _ => null,
            };
            if (servers is not null)
                Console.WriteLine($"started: {string.Join(", ", servers.Names.Select((n, i) => $"{n} pid {servers.Pids[i]} listening after {servers.StartToListeningMs[i]:N0} ms"))}; all serving {servers.StartToReadyMs:N0} ms after the first start");
            var spec = new LoadSpec
            {
                System = system,
                Round = round,
                Endpoints = servers?.Endpoints ?? [],
                ServerPids = servers?.Pids ?? [],
                ServerNames = servers?.Names ?? [],
                EmbeddedPath = system == "embedded" ? Path.Combine(folder, "data") : null,
                ClientCounts = _options.Clients,
                PhaseSeconds = _options.PhaseSeconds,
                ColdSeconds = _options.ColdSeconds,
                WarmupSeconds = _options.WarmupSeconds,
                IdleSeconds = _options.IdleSeconds,
                SettleSeconds = _options.SettleSeconds,
                ImportSeconds = _options.ImportSeconds,
                ImportBatch = importBatch,
                ImportInFlight = _options.ImportInFlight,
                Spread = _options.Spread,
                ResultPath = Path.Combine(folder, "result.json"),
            };
            string specPath = Path.Combine(folder, "spec.json");
            File.WriteAllText(specPath, JsonSerializer.Serialize(spec, Json.Options));
            var (file, prefix) = Servers.Self();
            using var load = await ChildProcess.StartAsync("load", file, prefix.Concat(["load", "--spec", specPath]),
                new Dictionary<string, string> { ["REPLICATION_CLUSTER_SECRET"] = _secret }, line => Console.WriteLine(line));
            await load.WaitForLineAsync("DONE", TimeSpan.FromMinutes(6));
            load.Process.WaitForExit(30_000);
            var result = JsonSerializer.Deserialize<LoadResult>(File.ReadAllText(spec.ResultPath), Json.Options)!;
            if (servers is not null)
            {
                result.StartToListeningMs = servers.StartToListeningMs;
                result.StartToReadyMs = servers.StartToReadyMs;
            }
            return result;
        }
        finally
        {
            servers?.Dispose();
            try { Directory.Delete(folder, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>
    /// Times what the issue's goal names: a fresh pwsh that imports the module and runs Start-ReplicationNode,
    /// from the process start to the node's port accepting a connection, twice: with the runtime's defaults (an operator's
    /// shell) and with the README's service unit's DOTNET_TieredCompilation=0 (<see cref="Servers.NodeEnvironment"/>;
    /// the dotnet-tool pwsh is IL-only, so without tiering pwsh compiles its own start-up fully optimized). pwsh.dll runs
    /// under `dotnet` directly, so the PID is pwsh itself (not the `dotnet pwsh` launcher, whose grandchild a kill would miss).
    /// </summary>
    private async Task PwshStartAsync(BenchRun run)
    {
        if (!_options.PwshStart)
        {
            run.PwshNote = "not measured in a --quick run";
            return;
        }
        if (_options.Module is null || _options.Pwsh is null || !File.Exists(_options.Module) || !File.Exists(_options.Pwsh))
        {
            run.PwshNote = "not measured (give --module Replication.psd1 and --pwsh pwsh.dll; ./build.ps1 Bench does)";
            return;
        }
        run.PwshDefaultStartToListeningMs = await PwshStartOnceAsync(run, serviceUnit: false);
        run.PwshStartToListeningMs = await PwshStartOnceAsync(run, serviceUnit: true);
    }

    /// <summary>One fresh pwsh to listening, in ms (0 when it failed: <see cref="BenchRun.PwshNote"/> says why).</summary>
    private async Task<double> PwshStartOnceAsync(BenchRun run, bool serviceUnit)
    {
        string dotnet = EtcdBinary.Which("dotnet") ?? "dotnet";
        string folder = Path.Combine(_temp, serviceUnit ? "pwsh-node-unit" : "pwsh-node-default");
        int port = Servers.FreePorts(1)[0];
        string script = "$ErrorActionPreference = 'Stop'; Import-Module $env:BENCH_MODULE; " +
            "$s = ConvertTo-SecureString $env:REPLICATION_CLUSTER_SECRET -AsPlainText -Force; " +
            "Start-ReplicationNode -Path $env:BENCH_NODE_PATH -Listen $env:BENCH_NODE_LISTEN -ClusterSecret $s -Wait";
        var env = Servers.NodeEnvironment(_secret); // a node process, as the README's service unit starts one
        if (!serviceUnit)
        {
            env.Remove("DOTNET_TieredCompilation");
            env.Remove(Servers.PoolSpinVariable);
        }
        foreach (var (k, v) in new Dictionary<string, string>
        {
            ["BENCH_MODULE"] = Path.GetFullPath(_options.Module!),
            ["BENCH_NODE_PATH"] = folder,
            ["BENCH_NODE_LISTEN"] = $"127.0.0.1:{port}",
            ["POWERSHELL_TELEMETRY_OPTOUT"] = "1",
            ["NO_COLOR"] = "1",
        }) env[k] = v;
        string what = serviceUnit ? "the service unit's environment" : "the runtime's defaults";
        try
        {
            using var pwsh = await ChildProcess.StartAsync("pwsh", dotnet, [_options.Pwsh!, "-NoProfile", "-NonInteractive", "-Command", script], env,
                _options.Verbose ? Console.WriteLine : null);
            double ms = await Servers.WaitListeningAsync(pwsh, port);
            Console.WriteLine($"pwsh + Import-Module + Start-ReplicationNode ({what}): listening {ms:N0} ms after the process start");
            return ms;
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or SocketException)
        {
            run.PwshNote = $"failed with {what}: " + e.Message.Split('\n')[0];
            Console.WriteLine($"pwsh start-up not measured ({what}): {e.Message}");
            return 0;
        }
        finally
        {
            try { if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true); }
            catch (IOException) { }
        }
    }
}
