using System.Diagnostics;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// Real node processes (tests/Replication.NodeProcess, one ClusterNode each) on loopback ports, for
/// the fault tests: start, SIGKILL, SIGSTOP/SIGCONT, restart from the same folder. Disposing kills
/// every process still running (also when a test fails) and deletes the folders.
/// </summary>
internal sealed class NodeProcesses : IDisposable
{
    public const string Secret = "node-process-tests";
    private static readonly TimeSpan StartBound = TimeSpan.FromSeconds(60);
    private readonly string _root = Path.Combine(Path.GetTempPath(), "repl-procs-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly Dictionary<int, Process> _processes = new();
    private readonly Action<string> _log;

    public NodeProcesses(Action<string> log) => _log = log;

    public Dictionary<int, int> Ports { get; } = new();
    /// <summary>When set, the processes accept injected faults carrying this token (ClusterNode.Faults.cs).</summary>
    public string? FaultToken { get; init; }
    /// <summary>The folder all node folders live in (node1, node2, ...).</summary>
    public string Root => _root;
    public string EndpointOf(int slot) => $"127.0.0.1:{Ports[slot]}";
    public IEnumerable<string> Endpoints => Ports.Keys.OrderBy(k => k).Select(EndpointOf);
    public int Pid(int slot) => _processes[slot].Id;

    /// <summary>Starts node process <paramref name="slot"/> (its folder and port are fixed per slot) and waits for READY; returns its node id.</summary>
    public async Task<int> StartAsync(int slot, int? joinSlot, params string[] extra)
    {
        if (!Ports.ContainsKey(slot)) Ports[slot] = ClusterNodeTests.FreePort();
        string host = HostDll();
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(host);
        psi.ArgumentList.Add("--path");
        psi.ArgumentList.Add(Path.Combine(_root, $"node{slot}"));
        psi.ArgumentList.Add("--listen");
        psi.ArgumentList.Add(EndpointOf(slot));
        if (joinSlot is int j)
        {
            psi.ArgumentList.Add("--join");
            psi.ArgumentList.Add(EndpointOf(j));
        }
        foreach (var e in extra) psi.ArgumentList.Add(e);
        psi.Environment["REPLICATION_CLUSTER_SECRET"] = Secret;
        if (FaultToken is { } token) psi.Environment[Replication.Engine.Cluster.ClusterNode.FaultInjectionVariable] = token;
        var process = Process.Start(psi) ?? throw new InvalidOperationException("dotnet did not start");
        _processes[slot] = process;
        var ready = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            if (e.Data.StartsWith("READY ", StringComparison.Ordinal)) ready.TrySetResult(int.Parse(e.Data.Split(' ')[1]));
            else Log($"[p{slot}] {e.Data}");
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) Log($"[p{slot} err] {e.Data}"); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var exited = process.WaitForExitAsync();
        var first = await Task.WhenAny(ready.Task, exited, Task.Delay(StartBound));
        if (first != ready.Task) throw new InvalidOperationException($"node process {slot} did not become ready (exited: {process.HasExited})");
        return ready.Task.Result;
    }

    public void Kill(int slot)
    {
        var p = _processes[slot];
        p.Kill(entireProcessTree: true);
        p.WaitForExit(10_000);
    }

    public void Signal(int slot, string signal)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill") { ArgumentList = { $"-{signal}", Pid(slot).ToString() }, UseShellExecute = false })!;
        kill.WaitForExit(10_000);
    }

    private void Log(string line)
    {
        try { _log(line); } catch (InvalidOperationException) { /* the test already finished */ }
    }

    /// <summary>tests/Replication.NodeProcess/bin/&lt;configuration&gt;/net10.0/Replication.NodeProcess.dll, beside this test's own output.</summary>
    internal static string HostDll()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory); // tests/Replication.Engine.Tests/bin/<cfg>/net10.0/
        string framework = dir.Name, configuration = dir.Parent!.Name;
        string testsRoot = dir.Parent!.Parent!.Parent!.Parent!.FullName;
        string dll = Path.Combine(testsRoot, "Replication.NodeProcess", "bin", configuration, framework, "Replication.NodeProcess.dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException("Build tests/Replication.NodeProcess first (the solution build does).", dll);
    }

    public void Dispose()
    {
        foreach (var (slot, p) in _processes)
        {
            try
            {
                if (p.HasExited) continue;
                Signal(slot, "CONT"); // a stopped process is killed just as well, but be tidy
                p.Kill(entireProcessTree: true);
                p.WaitForExit(10_000);
            }
            catch (InvalidOperationException) { }
            finally { p.Dispose(); }
        }
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
