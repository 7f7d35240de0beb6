using System.Runtime.InteropServices;

namespace Replication.Engine;

/// <summary>
/// Lowers the scheduling priority of the calling thread (Linux: its nice value, per thread; the thread priority .NET
/// offers does nothing there), for work that must not take a core from the node loops while they serve: a snapshot's
/// reading, sending and receiving (<see cref="Nice"/>), the start-up code warm-up (<see cref="Lowest"/>, CodeWarmUp). On
/// a machine with fewer cores than runnable threads the scheduler then runs a loop first, and the lowered work takes
/// what is left. A no-op elsewhere, and when the call fails (the thread keeps its priority; nothing depends on it).
/// </summary>
internal static class BackgroundPriority
{
    /// <summary>The nice value of bulk work (0 is normal): low enough that a loop thread wins nearly every contest, high
    /// enough that a snapshot still moves on a busy machine.</summary>
    internal const int Nice = 10;

    /// <summary>The lowest nice value: work that may wait for an idle core.</summary>
    internal const int Lowest = 19;

    /// <summary>Lowers the calling thread's priority to <paramref name="nice"/> (default <see cref="Nice"/>). Never throws.</summary>
    public static void LowerCurrentThread(int nice = Nice)
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
