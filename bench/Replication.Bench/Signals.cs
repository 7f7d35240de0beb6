using System.Runtime.InteropServices;

/// <summary>POSIX signals the failover scenarios send to a node process: SIGSTOP (pause, as a long GC or a
/// starved VM would) and SIGCONT. Linux numbering (x86-64 and arm64 share it). A kill goes through
/// <see cref="System.Diagnostics.Process.Kill()"/>, which sends SIGKILL.</summary>
internal static class Signals
{
    private const int SigCont = 18;
    private const int SigStop = 19;

    public static void Stop(int pid) => Send(pid, SigStop);
    public static void Continue(int pid) => Send(pid, SigCont);

    private static void Send(int pid, int signal)
    {
        if (kill(pid, signal) != 0)
            throw new InvalidOperationException($"kill({pid}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);
}
