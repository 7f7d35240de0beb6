using System.Runtime.InteropServices;

/// <summary>One line describing what the figures were measured on: cores, CPU, VM or not, memory, OS, kernel, .NET, and the temp folder's file system.</summary>
internal static class Machine
{
    public static string Describe(string tempFolder)
    {
        string cpu = "unknown CPU", vm = "";
        string memory = "";
        try
        {
            var info = File.ReadAllLines("/proc/cpuinfo");
            cpu = info.FirstOrDefault(l => l.StartsWith("model name"))?.Split(':', 2)[1].Trim() ?? cpu;
            if (info.Any(l => l.StartsWith("flags") && l.Contains(" hypervisor"))) vm = " VM";
            var total = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal:"));
            if (total is not null) memory = $", {long.Parse(total.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0 / 1024.0:0} GiB";
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return $"{Environment.ProcessorCount}-core{vm}, {cpu}{memory}, {OsName()}, kernel {Environment.OSVersion.Version}, .NET {Environment.Version}, temp folder on {FileSystem(tempFolder)}";
    }

    /// <summary>The 1, 5 and 15-minute load averages ("2.10 1.80 1.50"), or "" where /proc/loadavg is missing.</summary>
    public static string LoadAverage()
    {
        try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return ""; }
    }

    private static string OsName()
    {
        try
        {
            var pretty = File.ReadLines("/etc/os-release").FirstOrDefault(l => l.StartsWith("PRETTY_NAME="));
            if (pretty is not null) return pretty.Split('=', 2)[1].Trim('"');
        }
        catch (IOException) { }
        return RuntimeInformation.OSDescription;
    }

    /// <summary>The file system type and device of the mount holding <paramref name="folder"/> (longest matching mount point in /proc/mounts).</summary>
    private static string FileSystem(string folder)
    {
        try
        {
            var full = Path.GetFullPath(folder);
            var best = File.ReadLines("/proc/mounts")
                .Select(l => l.Split(' '))
                .Where(f => f.Length > 3 && (full == f[1] || full.StartsWith(f[1].TrimEnd('/') + "/", StringComparison.Ordinal)))
                .OrderByDescending(f => f[1].Length)
                .FirstOrDefault();
            return best is null ? "unknown" : $"{best[2]} ({best[0]} at {best[1]})";
        }
        catch (IOException) { return "unknown"; }
    }
}
