using System.Runtime.InteropServices;

namespace Replication.Engine;

/// <summary>
/// Lowers the scheduling priority of the calling thread (Linux: its nice value, per thread; the thread priority .NET
/// offers does nothing there), for work that must not take a core from the node loops while they serve: a snapshot's
/// reading, sending and receiving, and the start-up code warm-up (CodeWarmUp). On a machine with fewer cores than
/// runnable threads the scheduler then runs a loop first, and the lowered work takes what is left. A no-op elsewhere,
/// and when the call fails (the thread keeps its priority; nothing depends on it).
/// <para>The snapshot copy ran at nice 10 (stop 27) and runs at 19 since stop 29: in alternated ring-bench runs the
/// writes' p99 while a 33 MB snapshot streamed was 18-23 ms at 19 against 27-129 ms at 10 (idle 14-17 ms), and the
/// writers kept about 40% more of their rate during a move; the copy streamed at 32-58 MB/s instead of 50-64.</para>
/// </summary>
internal static class BackgroundPriority
{
    /// <summary>The lowest nice value (0 is normal): work that may wait for an idle core. A loop thread wins nearly every
    /// contest, and on a busy machine such work still gets a small share (the scheduler starves no thread).</summary>
    internal const int Lowest = 19;

    /// <summary>Lowers the calling thread's priority to <paramref name="nice"/> (default <see cref="Lowest"/>). Never throws.</summary>
    public static void LowerCurrentThread(int nice = Lowest)
    {
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            _ = SetPriority(PrioProcess, GetTid(), nice);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not glibc: the thread keeps its priority.
        }
    }

    /// <summary>The calling thread's nice value (Linux); null elsewhere. For tests.</summary>
    internal static int? CurrentThreadNice()
    {
        if (!OperatingSystem.IsLinux()) return null;
        Marshal.SetLastPInvokeError(0);
        int value = GetPriority(PrioProcess, GetTid());
        return value == -1 && Marshal.GetLastPInvokeError() != 0 ? null : value;
    }

    private const int PrioProcess = 0; // with a thread id as "who", Linux applies it to that thread alone

    [DllImport("libc", EntryPoint = "setpriority", SetLastError = true)]
    private static extern int SetPriority(int which, int who, int prio);

    [DllImport("libc", EntryPoint = "getpriority", SetLastError = true)]
    private static extern int GetPriority(int which, int who);

    [DllImport("libc", EntryPoint = "gettid")]
    private static extern int GetTid();
}
