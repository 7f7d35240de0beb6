using System.Runtime.InteropServices;

namespace Replication.Engine;

/// <summary>
/// Lowers the scheduling priority of the calling thread (Linux: its nice value, per thread), for bulk work that must not
/// take a core from the node loops while they serve writes: a snapshot's reading, sending and receiving. On a machine
/// with fewer cores than runnable threads the scheduler then runs a loop first, and the bulk work takes what is left. A
/// no-op elsewhere, and when the call fails (the thread keeps its priority; nothing depends on it).
/// </summary>
internal static class BackgroundPriority
{
    /// <summary>The nice value given (0 is normal, 19 the lowest): low enough that a loop thread wins nearly every contest.</summary>
    internal const int Nice = 10;

    /// <summary>Lowers the calling thread's priority to <see cref="Nice"/>. Never throws.</summary>
    public static void LowerCurrentThread()
    {
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            _ = SetPriority(PrioProcess, GetTid(), Nice);
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
