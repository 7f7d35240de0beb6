using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Replication.Engine.Client;
using Replication.Engine.Cluster;
using Replication.Engine.Security;
using Replication.Engine.Transport;

namespace Replication.Engine.Verification;

/// <summary>
/// Node processes the drill starts itself, one per node, on loopback ports, in folders under its own root: the first
/// founds the cluster, the others join it. A kill is SIGKILL of the process (the node dies mid-write, as in a crash)
/// and a restart of the same command on the same folder and port; a pause is SIGSTOP and SIGCONT. A partition (at the
/// transport of the nodes on both sides, as in an embedded cluster) and a slow disk are set inside the node through
/// the administrative operation fault.set (ClusterNode.Faults.cs), which a node accepts only with the random token
/// this target puts in its environment (<see cref="ClusterNode.FaultInjectionVariable"/>); the drill's mutant too.
/// <para>
/// The process is started by the caller's launcher (<see cref="NodeProcessStart"/> in, a <see cref="ProcessStartInfo"/>
/// out), which must start the node process itself, not a launcher of it (a signal must reach the node). The cluster
/// secret goes in its environment only. Disposing kills every process (resumed first) and deletes the folders.
/// Linux and macOS only (POSIX signals).
/// </para>
/// </summary>
internal sealed class ProcessDrillTarget : IDrillTarget
{
    private static readonly TimeSpan StartBound = TimeSpan.FromSeconds(90);
    private readonly Func<NodeProcessStart, ProcessStartInfo> _launcher;
    private readonly string _root;
    private readonly string _secret = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
    private readonly string _faultToken = Convert.ToBase64String(RandomNumberGenerator.GetBytes(24));
    private bool _mutant;
    private readonly Action<string>? _log;
    private readonly int _nodeCount;
    private readonly Dictionary<int, Slot> _slots = new(); // by node id
    private readonly List<Slot> _all = new();
    private ClusterClient? _admin;

    private sealed class Slot(int index, string path, int port)
    {
        public int Index { get; } = index;
        public string Path { get; } = path;
        public int Port { get; } = port;
        public string Endpoint => $"127.0.0.1:{Port}";
        public Process? Process { get; set; }
        public int NodeId { get; set; }
        public Queue<string> Tail { get; } = new();
        /// <summary>The fault state this target set in the node (fault.set), applied again after a restart.</summary>
        public int[] CutOff { get; set; } = [];
        public TimeSpan SaveDelay { get; set; }
    }

    private ProcessDrillTarget(Func<NodeProcessStart, ProcessStartInfo> launcher, string root, int nodeCount, Action<string>? log)
    {
        _launcher = launcher;
        _root = root;
        _nodeCount = nodeCount;
        _log = log;
        Security = TransportSecurity.SharedSecret(ClusterSecret.FromString(_secret));
    }

    public string ClusterName => _admin?.Name ?? "";
    public string Description => "NodeProcesses";
    public IReadOnlyList<int> NodeIds => _slots.Keys.Order().ToArray();
    public int ShardCount => _admin?.ShardCount ?? 0;
    public DrillFault Supported => DrillFault.All;
    public IReadOnlyList<string> Endpoints => _all.Select(s => s.Endpoint).ToArray();
    public TransportSecurity Security { get; }

    /// <summary>Starts <paramref name="nodeCount"/> node processes under <paramref name="root"/> (a new or empty folder) and waits until every shard has all of them as voters.</summary>
    public static async Task<ProcessDrillTarget> StartAsync(Func<NodeProcessStart, ProcessStartInfo> launcher, string root, int nodeCount, Action<string>? log, CancellationToken ct)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
            throw new InvalidDrillOptionsException("A drill on node processes needs POSIX signals (Linux or macOS); run it on an embedded cluster here.");
        Directory.CreateDirectory(root);
        var target = new ProcessDrillTarget(launcher, root, nodeCount, log);
        try
        {
            for (int i = 0; i < nodeCount; i++) target._all.Add(new Slot(i, Path.Combine(root, $"node{i + 1}"), FreePort()));
            foreach (var slot in target._all)
            {
                await target.LaunchAsync(slot, slot.Index == 0 ? null : target._all[0].Endpoint, ct).ConfigureAwait(false);
                if (slot.Index == 0)
                    target._admin = await ClusterClient.ConnectAsync(new[] { slot.Endpoint }, target.Security, options: AdminOptions, cancellationToken: ct).ConfigureAwait(false);
                var status = await target._admin!.StatusAsync(ct).ConfigureAwait(false);
                slot.NodeId = status.Nodes.FirstOrDefault(n => n.Endpoint == slot.Endpoint)?.Id
                    ?? throw new InvalidOperationException($"Node process {slot.Index + 1} at {slot.Endpoint} is not in the cluster's registry.");
                target._slots[slot.NodeId] = slot;
            }
            await target.WaitFormedAsync(ct).ConfigureAwait(false);
            return target;
        }
        catch
        {
            await target.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static ClusterClientOptions AdminOptions => new() { ConnectTimeout = TimeSpan.FromSeconds(2), RequestTimeout = TimeSpan.FromSeconds(5), NetworkMargin = TimeSpan.FromSeconds(1) };

    private async Task LaunchAsync(Slot slot, string? join, CancellationToken ct)
    {
        var psi = _launcher(new NodeProcessStart(slot.Index + 1, slot.Path, slot.Endpoint, join));
        psi.UseShellExecute = false;
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.RedirectStandardInput = true; // the node's stdin closes with this process: a node process whose parent died may stop
        psi.Environment[NodeProcessStart.SecretVariable] = _secret;
        psi.Environment[ClusterNode.FaultInjectionVariable] = _faultToken;
        var process = Process.Start(psi) ?? throw new InvalidOperationException($"The launcher's command for node process {slot.Index + 1} did not start.");
        slot.Process = process;
        process.OutputDataReceived += (_, e) => Note(slot, e.Data);
        process.ErrorDataReceived += (_, e) => Note(slot, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var watch = Stopwatch.StartNew();
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            if (process.HasExited)
                throw new InvalidOperationException($"Node process {slot.Index + 1} exited with code {process.ExitCode} while starting: {string.Join(" | ", slot.Tail)}");
            try
            {
                await using var probe = await ClusterClient.ConnectAsync(new[] { slot.Endpoint }, Security, options: new ClusterClientOptions { ConnectTimeout = TimeSpan.FromSeconds(1), RequestTimeout = TimeSpan.FromSeconds(3) }, cancellationToken: ct).ConfigureAwait(false);
                _log?.Invoke($"drill: node process {slot.Index + 1} (pid {process.Id}) answers at {slot.Endpoint}");
                return;
            }
            catch (ReplicationException) when (watch.Elapsed < StartBound)
            {
                await Task.Delay(200, ct).ConfigureAwait(false);
            }
        }
    }

    private void Note(Slot slot, string? line)
    {
        if (line is null) return;
        lock (slot.Tail)
        {
            slot.Tail.Enqueue(line);
            while (slot.Tail.Count > 20) slot.Tail.Dequeue();
        }
        _log?.Invoke($"[p{slot.Index + 1}] {line}");
    }

    private async Task WaitFormedAsync(CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        string state = "no status yet";
        while (watch.Elapsed < StartBound)
        {
            try
            {
                var status = await _admin!.StatusAsync(ct).ConfigureAwait(false);
                int want = Math.Min(status.ReplicationFactor, _nodeCount);
                int formed = status.Shards.Count(s => s.Voters.Count == want && s.Learners.Count == 0 && s.Leader != 0);
                if (formed == status.ShardCount && status.Nodes.Count == _nodeCount) return;
                state = $"{status.Nodes.Count} of {_nodeCount} nodes, {formed} of {status.ShardCount} shards at {want} voters";
            }
            catch (ReplicationException e)
            {
                state = e.Message;
            }
            await Task.Delay(100, ct).ConfigureAwait(false);
        }
        throw new QuorumUnavailableException(0, StartBound, $"the node processes did not form a cluster in time ({state})");
    }

    public async Task<int> LeaderOfAsync(int shard, CancellationToken cancellationToken)
    {
        try
        {
            using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            bound.CancelAfter(TimeSpan.FromSeconds(2));
            var status = await _admin!.StatusAsync(bound.Token).ConfigureAwait(false);
            return status.Shards.FirstOrDefault(s => s.Id == shard)?.Leader ?? 0;
        }
        catch (Exception e) when (e is ReplicationException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return 0;
        }
    }

    public async Task InjectAsync(DrillFault kind, int node, TimeSpan slowDelay, CancellationToken cancellationToken)
    {
        var slot = _slots[node];
        switch (kind)
        {
            case DrillFault.Kill:
                if (slot.Process is { HasExited: false } p)
                {
                    p.Kill(); // SIGKILL
                    await p.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
                }
                break;
            case DrillFault.Pause:
                Signal(slot, Posix.Stop);
                break;
            case DrillFault.Partition:
                foreach (var other in _slots.Values) other.CutOff = other == slot ? _slots.Keys.Where(n => n != node).ToArray() : [node];
                foreach (var s in _slots.Values) await ApplyFaultsAsync(s, cancellationToken).ConfigureAwait(false);
                break;
            case DrillFault.SlowDisk:
                slot.SaveDelay = slowDelay;
                await ApplyFaultsAsync(slot, cancellationToken).ConfigureAwait(false);
                break;
        }
    }

    public async Task HealAsync(DrillFault kind, int node, CancellationToken cancellationToken)
    {
        var slot = _slots[node];
        switch (kind)
        {
            case DrillFault.Kill:
                slot.Process?.Dispose();
                await LaunchAsync(slot, join: null, cancellationToken).ConfigureAwait(false); // the folder says who it is
                if (_mutant) await ApplyFaultsAsync(slot, cancellationToken).ConfigureAwait(false); // a new process starts clean
                break;
            case DrillFault.Pause:
                Signal(slot, Posix.Continue);
                break;
            case DrillFault.Partition:
                foreach (var s in _slots.Values) s.CutOff = [];
                foreach (var s in _slots.Values) await ApplyFaultsAsync(s, cancellationToken).ConfigureAwait(false);
                break;
            case DrillFault.SlowDisk:
                slot.SaveDelay = TimeSpan.Zero;
                await ApplyFaultsAsync(slot, cancellationToken).ConfigureAwait(false);
                break;
        }
    }

    public async Task HealAllAsync()
    {
        _mutant = false;
        foreach (var slot in _all)
        {
            slot.CutOff = [];
            slot.SaveDelay = TimeSpan.Zero;
            try
            {
                if (slot.Process is { HasExited: false }) Signal(slot, Posix.Continue);
                else if (slot.Process is not null)
                {
                    using var bound = new CancellationTokenSource(StartBound);
                    slot.Process.Dispose();
                    await LaunchAsync(slot, join: null, bound.Token).ConfigureAwait(false);
                }
            }
            catch (Exception e) when (e is InvalidOperationException or ReplicationException or OperationCanceledException or System.ComponentModel.Win32Exception)
            {
                _log?.Invoke($"drill: node process {slot.Index + 1} could not be brought back: {e.Message}");
            }
        }
        foreach (var slot in _all)
        {
            try
            {
                using var bound = new CancellationTokenSource(StartBound);
                if (slot.Process is { HasExited: false }) await ApplyFaultsAsync(slot, bound.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is ReplicationException or OperationCanceledException)
            {
                _log?.Invoke($"drill: node process {slot.Index + 1} could not be healed: {e.Message}");
            }
        }
    }

    public async Task WaitForLeadersAsync(TimeSpan bound, CancellationToken cancellationToken) =>
        await _admin!.WaitForLeadersAsync(null, bound, cancellationToken).ConfigureAwait(false);

    public async Task SetMutantAsync(bool on, CancellationToken cancellationToken)
    {
        _mutant = on;
        foreach (var slot in _all) await ApplyFaultsAsync(slot, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sets the slot's whole fault state in its node (idempotent), through a connection to that node itself, retried within a bound.</summary>
    private async Task ApplyFaultsAsync(Slot slot, CancellationToken ct)
    {
        var args = new FaultArgs(_faultToken, slot.CutOff, (long)slot.SaveDelay.TotalMilliseconds, _mutant);
        var watch = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await using var client = await ClusterClient.ConnectAsync(new[] { slot.Endpoint }, Security, options: AdminOptions, cancellationToken: ct).ConfigureAwait(false);
                await client.AdminAsync<Empty>(AdminOps.FaultSet, slot.NodeId, args, TimeSpan.FromSeconds(5), ct).ConfigureAwait(false);
                return;
            }
            catch (ReplicationException) when (watch.Elapsed < TimeSpan.FromSeconds(20))
            {
                await Task.Delay(200, ct).ConfigureAwait(false); // a node under load, or just restarted
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_admin is not null) await _admin.DisposeAsync().ConfigureAwait(false);
        foreach (var slot in _all)
        {
            if (slot.Process is not { } p) continue;
            try
            {
                if (!p.HasExited)
                {
                    Signal(slot, Posix.Continue);
                    p.Kill(entireProcessTree: true);
                    p.WaitForExit(10_000);
                }
            }
            catch (InvalidOperationException) { /* exited meanwhile */ }
            finally { p.Dispose(); }
        }
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try { Directory.Delete(_root, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    private static void Signal(Slot slot, int signal)
    {
        if (slot.Process is not { HasExited: false } p) return;
        if (Posix.Kill(p.Id, signal) != 0)
            throw new InvalidOperationException($"Signal {signal} to node process {slot.Index + 1} (pid {p.Id}) failed: errno {Marshal.GetLastPInvokeError()}.");
    }

    private static readonly HashSet<int> HandedOut = new(); // guarded by itself
    private static readonly Random PortChoice = new();

    /// <summary>
    /// A port for a node process to listen on, on every start: the drill kills and restarts its processes on the same
    /// endpoint (the cluster's registry has it), so the port is chosen here, not by the node binding port 0. It is
    /// chosen below the kernel's ephemeral range (Linux: ip_local_port_range), where nothing takes ports unasked, never
    /// twice in this process, and free when chosen. Bug fixed: it was a port the OS picked for port 0 and released, in
    /// the ephemeral range, which the drill's own outgoing connections (and any other ':0' listener) could be given
    /// before the node bound it, or while a killed node was down; the node process then failed with ListenEndpointInUse.
    /// </summary>
    private static int FreePort()
    {
        int low = 32768;
        const string range = "/proc/sys/net/ipv4/ip_local_port_range";
        try
        {
            if (File.Exists(range)) low = int.Parse(File.ReadAllText(range).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)[0], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException) { }
        for (int i = 0; i < 200; i++)
        {
            int port;
            lock (HandedOut)
            {
                port = PortChoice.Next(10000, Math.Max(10001, low));
                if (!HandedOut.Add(port)) continue;
            }
            var probe = new TcpListener(IPAddress.Loopback, port);
            try
            {
                probe.Start();
                return port;
            }
            catch (SocketException) { }
            finally { probe.Stop(); }
        }
        throw new InvalidOperationException($"No free loopback port found below {low} for a node process.");
    }

    /// <summary>kill(2), and the signal numbers that differ between Linux and macOS.</summary>
    private static class Posix
    {
        public static int Stop => OperatingSystem.IsMacOS() ? 17 : 19;
        public static int Continue => OperatingSystem.IsMacOS() ? 19 : 18;

        [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
        public static extern int Kill(int pid, int signal);
    }
}
