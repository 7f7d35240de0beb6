using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;

/// <summary>
/// A process the bench started (a node, an etcd member, the load generator), with its output lines.
/// The PID is the server itself: the bench starts the real executable (never a launcher such as
/// `dotnet pwsh` whose grandchild would survive a kill; see shared/TOOLCHAIN.md), so /proc/&lt;pid&gt;/stat
/// is that server's CPU and a kill stops it.
/// <para>
/// Every child is killed when the bench ends, however it ends: <see cref="Dispose"/> in a finally,
/// <see cref="KillAll"/> on SIGINT/SIGTERM/SIGHUP and at process exit, and, for a bench that is itself
/// SIGKILLed, the kernel: children are started through `setpriv --pdeathsig KILL` (util-linux) from one
/// dedicated thread that lives as long as the bench. The parent-death signal fires when the thread that
/// forked the child exits, so the fork must not happen on a pool thread that may retire.
/// </para>
/// Thread-safe.
/// </summary>
internal sealed class ChildProcess : IDisposable
{
    private static readonly ConcurrentDictionary<int, ChildProcess> Running = new();
    private static readonly BlockingCollection<(ProcessStartInfo Info, TaskCompletionSource<Process> Started)> Spawns = new();
    private static readonly string? Setpriv = File.Exists("/usr/bin/setpriv") ? "/usr/bin/setpriv" : null;
    private static int _hooked;

    private readonly ConcurrentQueue<string> _tail = new();
    private readonly object _waitersGate = new();
    private readonly List<(string Text, TaskCompletionSource<string> Line)> _waiters = new();
    /// <summary>Lines kept per child: enough for a start-up marker to be found after the fact, bounded for long runs.</summary>
    private const int MaxLines = 10_000;

    private ChildProcess(string name, Process process, long startedTimestamp)
    {
        Name = name;
        Process = process;
        StartedTimestamp = startedTimestamp;
    }

    public string Name { get; }
    public Process Process { get; }
    public int Pid => Process.Id;
    /// <summary><see cref="Stopwatch.GetTimestamp"/> just before the fork.</summary>
    public long StartedTimestamp { get; }
    public bool HasExited => Process.HasExited;

    /// <summary>The last lines the child printed (stdout and stderr), for a failure message.</summary>
    public string Tail(int lines = 20) => string.Join(Environment.NewLine, _tail.TakeLast(lines));

    /// <summary>Receives every line the child prints (stdout and stderr), prefixed with its name.</summary>
    public Action<string>? Echo { get; init; }

    /// <summary>
    /// Starts <paramref name="file"/> with <paramref name="arguments"/>; stdin is a pipe the child may watch
    /// (end of file = the bench went away), stdout and stderr are read line by line.
    /// </summary>
    public static async Task<ChildProcess> StartAsync(string name, string file, IEnumerable<string> arguments,
        IReadOnlyDictionary<string, string>? environment = null, Action<string>? echo = null)
    {
        HookExit();
        var info = new ProcessStartInfo(Setpriv ?? file)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (Setpriv is not null)
        {
            info.ArgumentList.Add("--pdeathsig");
            info.ArgumentList.Add("KILL");
            info.ArgumentList.Add("--");
            info.ArgumentList.Add(file);
        }
        foreach (var a in arguments) info.ArgumentList.Add(a);
        if (environment is not null)
            foreach (var (k, v) in environment) info.Environment[k] = v;
        long t0 = Stopwatch.GetTimestamp();
        var started = new TaskCompletionSource<Process>(TaskCreationOptions.RunContinuationsAsynchronously);
        Spawns.Add((info, started));
        var process = await started.Task.ConfigureAwait(false);
        var child = new ChildProcess(name, process, t0) { Echo = echo };
        Running[process.Id] = child;
        process.OutputDataReceived += (_, e) => child.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => child.OnLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>Waits for the first line containing <paramref name="text"/>; throws when the child exits first or the time runs out.</summary>
    public async Task<string> WaitForLineAsync(string text, TimeSpan timeout)
    {
        var tcs = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_waitersGate)
        {
            var seen = _tail.FirstOrDefault(l => l.Contains(text, StringComparison.Ordinal));
            if (seen is not null) return seen;
            _waiters.Add((text, tcs));
        }
        var exited = Process.WaitForExitAsync();
        var first = await Task.WhenAny(tcs.Task, exited, Task.Delay(timeout)).ConfigureAwait(false);
        if (first == tcs.Task) return tcs.Task.Result;
        throw new InvalidOperationException(first == exited
            ? $"{Name} exited (code {Process.ExitCode}) before printing '{text}'. Its last lines:{Environment.NewLine}{Tail()}"
            : $"{Name} did not print '{text}' within {timeout.TotalSeconds:0} s. Its last lines:{Environment.NewLine}{Tail()}");
    }

    private void OnLine(string? line)
    {
        if (line is null) return;
        lock (_waitersGate)
        {
            _tail.Enqueue(line);
            while (_tail.Count > MaxLines) _tail.TryDequeue(out _);
            for (int i = _waiters.Count - 1; i >= 0; i--)
            {
                if (!line.Contains(_waiters[i].Text, StringComparison.Ordinal)) continue;
                _waiters[i].Line.TrySetResult(line);
                _waiters.RemoveAt(i);
            }
        }
        Echo?.Invoke($"  [{Name}] {line}");
    }

    /// <summary>SIGKILL, then waits (bounded) until the process is gone. Idempotent.</summary>
    public void Dispose()
    {
        try
        {
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
                Process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException) { /* already gone */ }
        catch (System.ComponentModel.Win32Exception) { /* already gone */ }
        Running.TryRemove(Process.Id, out _);
    }

    /// <summary>Kills every child still running. Safe from any thread, also from a signal handler.</summary>
    public static void KillAll()
    {
        foreach (var child in Running.Values) child.Dispose();
    }

    private static void HookExit()
    {
        if (Interlocked.Exchange(ref _hooked, 1) == 1) return;
        var spawner = new Thread(() =>
        {
            foreach (var (info, started) in Spawns.GetConsumingEnumerable())
            {
                try { started.SetResult(Process.Start(info) ?? throw new InvalidOperationException($"{info.FileName} did not start")); }
                catch (Exception e) { started.SetException(e); }
            }
        })
        { IsBackground = true, Name = "bench child spawner" };
        spawner.Start();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => KillAll();
        AppDomain.CurrentDomain.UnhandledException += (_, _) => KillAll();
        foreach (var signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP })
            Registrations.Add(PosixSignalRegistration.Create(signal, _ => KillAll())); // then the default action ends the bench
    }

    private static readonly List<PosixSignalRegistration> Registrations = new();
}
