namespace Replication.Engine;

/// <summary>
/// Linux: lowers the calling thread's scheduling priority (its nice value; per thread on Linux), for bulk work that must
/// take only the CPU time the node's serving threads leave (the thread priority .NET offers does nothing there). Raising
/// it back needs a privilege a node does not have, so only threads of their own that end with the work use it. Elsewhere,
/// or when refused: unchanged. (CodeWarmUp does the same for its compilation thread.)
/// </summary>
internal static class NiceThread
{
    /// <summary>Sets the calling thread's nice value to <paramref name="nice"/> (0 normal .. 19 lowest); false when it could not.</summary>
    public static bool Lower(int nice)
    {
        if (!OperatingSystem.IsLinux()) return false;
        try { return setpriority(0 /* PRIO_PROCESS: with a thread id, that thread */, gettid(), nice) == 0; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return false; }
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int setpriority(int which, int who, int prio);

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern int gettid();
}
