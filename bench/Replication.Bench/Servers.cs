using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

/// <summary>
/// Three server processes of one system on loopback, started for one round and killed when disposed (also
/// when starting failed half-way). Records, per process, the time from its start to its client port
/// accepting a TCP connection (the same probe for both systems), and the time from the first start to the
/// whole cluster serving (Replication: the last node printed READY, which a joiner does after it joined;
/// etcd: every member logged "ready to serve client requests", which it does after its membership was
/// committed through Raft).
/// </summary>
internal sealed class Servers : IDisposable
{
    private static readonly TimeSpan StartBound = TimeSpan.FromSeconds(90);
    private readonly List<ChildProcess> _processes = new();
    private readonly string _folder;

    private Servers(string folder) => _folder = folder;

    public string[] Endpoints { get; private set; } = [];
    public string[] Names { get; private set; } = [];
    public int[] Pids => _processes.Select(p => p.Pid).ToArray();
    public double[] StartToListeningMs { get; private set; } = [];
    public double StartToReadyMs { get; private set; }

    /// <summary>Set from --node-tiered before any node starts (<see cref="NodeEnvironment"/>).</summary>
    public static bool NodeTiered { get; set; }

    /// <summary>Set from --node-env before any node starts: added to <see cref="NodeEnvironment"/>.</summary>
    public static IReadOnlyDictionary<string, string> NodeEnv { get; set; } = new Dictionary<string, string>();

    /// <summary>
    /// The environment of every Replication node process the bench starts (and of the fresh pwsh it times): the cluster
    /// secret, and DOTNET_TieredCompilation=0 as the README's service unit sets it (README, "As a systemd service"): with
    /// tiering on, a node spent its first minute recompiling its hot ReadyToRun methods at tier 1 (45% of the leader's
    /// samples in libclrjit.so during 1-client writes, `perf`), and ran at a third of its later speed meanwhile.
    /// --node-tiered (<see cref="NodeTiered"/>) runs them with the runtime's default instead, for comparison. Also the
    /// service unit's thread-pool spin limit (<see cref="PoolSpinLimit"/>); --node-env
    /// DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=70 runs them with the runtime's default instead.
    /// </summary>
    public static Dictionary<string, string> NodeEnvironment(string secret)
    {
        var env = new Dictionary<string, string> { ["REPLICATION_CLUSTER_SECRET"] = secret, [PoolSpinVariable] = PoolSpinLimit };
        if (!NodeTiered) env["DOTNET_TieredCompilation"] = "0";
        foreach (var (k, v) in NodeEnv) env[k] = v;
        return env;
    }

    /// <summary>The environment variable of the .NET thread pool's spin limit: how many times an idle worker spins (yielding
    /// its core each time) for new work before it sleeps.</summary>
    public const string PoolSpinVariable = "DOTNET_ThreadPool_UnfairSemaphoreSpinLimit";

    /// <summary>
    /// The spin limit the README's service unit sets (runtime default 70). Idle pool workers spinning were the largest
    /// single item in a node's profile (sched_yield: 15% of the leader's CPU samples in 16-client writes, 6-9 calls per
    /// write over the three nodes); a node's pool work comes one request at a time, so on a machine whose cores the nodes
    /// share the spin mostly burns what the other threads need. Four alternated quick runs each (2026-12-01, 04:17-04:33,
    /// 5-second phases), mean writes / reads / import: default 322, 1,350, 2,563 / 1,517, 5,237, 8,874 / 9,337; limit 5:
    /// 331, 1,469, 2,766 / 1,533, 6,268, 10,761 / 10,319; limit 10 within a few percent of 5; limit 0 (two runs) between them.
    /// </summary>
    public const string PoolSpinLimit = "5";

    /// <summary>Node 1 founds the cluster; nodes 2 and 3 join through it, one after the other (each join changes the replicated
    /// membership). <paramref name="storeLayout"/>: --store-layout's value for the nodes (null: the engine's default).</summary>
    public static async Task<Servers> StartReplicationAsync(string folder, string secret, int? electionTicks, string? storeLayout, Action<string>? echo)
    {
        var servers = new Servers(folder);
        try
        {
            var ports = FreePorts(3);
            servers.Endpoints = ports.Select(p => $"127.0.0.1:{p}").ToArray();
            servers.Names = ["node1", "node2", "node3"];
            var listening = new double[3];
            var (file, prefix) = Self();
            for (int i = 0; i < 3; i++)
            {
                var args = prefix.Concat(["node", "--path", Path.Combine(folder, $"node{i + 1}"), "--listen", servers.Endpoints[i]]).ToList();
                if (i > 0) args.AddRange(["--join", servers.Endpoints[0]]);
                if (electionTicks is int ticks) args.AddRange(["--election-ticks", ticks.ToString()]);
                if (storeLayout is not null) args.AddRange(["--store-layout", storeLayout]);
                var child = await ChildProcess.StartAsync(servers.Names[i], file, args, NodeEnvironment(secret), echo);
                servers._processes.Add(child);
                listening[i] = await WaitListeningAsync(child, ports[i]);
                await child.WaitForLineAsync("READY ", StartBound);
            }
            servers.StartToListeningMs = listening;
            servers.StartToReadyMs = Stopwatch.GetElapsedTime(servers._processes[0].StartedTimestamp).TotalMilliseconds;
            return servers;
        }
        catch
        {
            servers.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A 3-member etcd started together (static bootstrap), data under <paramref name="folder"/>, default
    /// fsync and quota; --max-txn-ops raised to <paramref name="maxTxnOps"/> so an import batch is one transaction.
    /// </summary>
    public static async Task<Servers> StartEtcdAsync(string etcd, string folder, int maxTxnOps, Action<string>? echo)
    {
        var servers = new Servers(folder);
        try
        {
            var ports = FreePorts(6);
            var client = ports.Take(3).ToArray();
            var peer = ports.Skip(3).ToArray();
            servers.Endpoints = client.Select(p => $"127.0.0.1:{p}").ToArray();
            servers.Names = ["etcd1", "etcd2", "etcd3"];
            string cluster = string.Join(",", Enumerable.Range(0, 3).Select(i => $"{servers.Names[i]}=http://127.0.0.1:{peer[i]}"));
            string token = "bench-" + Guid.NewGuid().ToString("N")[..8];
            for (int i = 0; i < 3; i++)
            {
                string[] args =
                [
                    "--name", servers.Names[i],
                    "--data-dir", Path.Combine(folder, servers.Names[i]),
                    "--listen-client-urls", $"http://127.0.0.1:{client[i]}",
                    "--advertise-client-urls", $"http://127.0.0.1:{client[i]}",
                    "--listen-peer-urls", $"http://127.0.0.1:{peer[i]}",
                    "--initial-advertise-peer-urls", $"http://127.0.0.1:{peer[i]}",
                    "--initial-cluster", cluster,
                    "--initial-cluster-token", token,
                    "--initial-cluster-state", "new",
                    "--max-txn-ops", maxTxnOps.ToString(),
                ];
                servers._processes.Add(await ChildProcess.StartAsync(servers.Names[i], etcd, args, null, echo));
            }
            var listening = await Task.WhenAll(servers._processes.Select((p, i) => WaitListeningAsync(p, client[i])));
            await Task.WhenAll(servers._processes.Select(p => p.WaitForLineAsync("ready to serve client requests", StartBound)));
            servers.StartToListeningMs = listening;
            servers.StartToReadyMs = Stopwatch.GetElapsedTime(servers._processes[0].StartedTimestamp).TotalMilliseconds;
            return servers;
        }
        catch
        {
            servers.Dispose();
            throw;
        }
    }

    /// <summary>Polls the port with TCP connects every 5 ms; returns ms from the process start to the first accepted connection.</summary>
    public static async Task<double> WaitListeningAsync(ChildProcess child, int port)
    {
        var bound = Stopwatch.StartNew();
        while (true)
        {
            using (var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
            {
                try
                {
                    await socket.ConnectAsync(IPAddress.Loopback, port);
                    return Stopwatch.GetElapsedTime(child.StartedTimestamp).TotalMilliseconds;
                }
                catch (SocketException) { /* not listening yet */ }
            }
            if (child.HasExited) throw new InvalidOperationException($"{child.Name} exited before listening. Its last lines:{Environment.NewLine}{child.Tail()}");
            if (bound.Elapsed > StartBound) throw new TimeoutException($"{child.Name} did not listen on {port} within {StartBound.TotalSeconds:0} s.");
            await Task.Delay(5);
        }
    }

    /// <summary>Ports the kernel hands out for 127.0.0.1:0, all held at once so they differ, then released for the servers.</summary>
    public static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        try
        {
            foreach (var l in listeners) l.Start();
            return listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        }
        finally
        {
            foreach (var l in listeners) l.Stop();
        }
    }

    /// <summary>How to start this same program in another role: its apphost, or `dotnet &lt;dll&gt;` (both run the program in that very process).</summary>
    public static (string File, string[] Prefix) Self()
    {
        string path = Environment.ProcessPath ?? "dotnet";
        return Path.GetFileNameWithoutExtension(path) == "dotnet"
            ? (path, [typeof(Servers).Assembly.Location])
            : (path, []);
    }

    /// <summary>Kills every process of this system and deletes its data. Idempotent.</summary>
    public void Dispose()
    {
        foreach (var p in _processes) p.Dispose();
        try { if (Directory.Exists(_folder)) Directory.Delete(_folder, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
