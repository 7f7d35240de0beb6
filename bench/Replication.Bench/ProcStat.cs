using System.Runtime.InteropServices;

/// <summary>CPU time a process used, user and kernel, in seconds.</summary>
internal readonly record struct CpuTime(double User, double System)
{
    public double Total => User + System;
    public static CpuTime operator -(CpuTime a, CpuTime b) => new(a.User - b.User, a.System - b.System);
}

/// <summary>
/// Reads a process's CPU time from /proc/&lt;pid&gt;/stat (utime and stime, fields 14 and 15, in clock
/// ticks of sysconf(_SC_CLK_TCK)), for every thread of the process, children excluded. Linux only;
/// elsewhere (or for a process that is gone) it reads zero, and the report says CPU was not measured.
/// </summary>
internal static class ProcStat
{
    private const int ScClkTck = 2; // _SC_CLK_TCK in glibc and musl

    private static readonly double TicksPerSecond = ReadTicks();

    public static bool Available => OperatingSystem.IsLinux();

    public static CpuTime Read(int pid)
    {
        string text;
        try { text = File.ReadAllText($"/proc/{pid}/stat"); }
        catch (IOException) { return default; }
        catch (UnauthorizedAccessException) { return default; }
        // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
        var rest = text[(text.LastIndexOf(')') + 2)..].Split(' ');
        // rest[0] is field 3 (state), so field n is rest[n - 3].
        return new CpuTime(long.Parse(rest[14 - 3]) / TicksPerSecond, long.Parse(rest[15 - 3]) / TicksPerSecond);
    }

    public static CpuTime[] Read(IReadOnlyList<int> pids) => pids.Select(Read).ToArray();

    /// <summary>
    /// CPU time the whole machine was busy (every process and the kernel), summed over all cores, from the
    /// first line of /proc/stat: user, nice, system, irq, softirq and steal (guest time is inside user).
    /// Subtracting the processes the bench knows gives the CPU that other work took meanwhile (the noise).
    /// </summary>
    public static double ReadMachineBusy()
    {
        try
        {
            var f = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            long busy = long.Parse(f[1]) + long.Parse(f[2]) + long.Parse(f[3]) + long.Parse(f[6]) + long.Parse(f[7]) + (f.Length > 8 ? long.Parse(f[8]) : 0);
            return busy / TicksPerSecond;
        }
        catch (IOException) { return 0; }
        catch (UnauthorizedAccessException) { return 0; }
    }

    private static double ReadTicks()
    {
        if (!OperatingSystem.IsLinux()) return 100;
        try
        {
            long ticks = Sysconf(ScClkTck);
            return ticks > 0 ? ticks : 100;
        }
        catch (DllNotFoundException) { return 100; }
        catch (EntryPointNotFoundException) { return 100; }
    }

    [DllImport("libc", EntryPoint = "sysconf")]
    private static extern long Sysconf(int name);
}
