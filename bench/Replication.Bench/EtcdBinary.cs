using System.Diagnostics;
using System.Runtime.InteropServices;

/// <summary>
/// Finds the etcd server binary, installing Debian's `etcd-server` package with apt-get when it is missing
/// and this process may (root, apt-get present, the Debian mirror reachable). Never downloads anything else.
/// </summary>
internal static class EtcdBinary
{
    /// <summary>The path of `etcd`, or null with the reason in <paramref name="note"/>.</summary>
    public static string? Find(bool install, Action<string> say, out string note)
    {
        if (Which("etcd") is { } found)
        {
            note = "";
            return found;
        }
        if (!install)
        {
            note = "etcd is not installed and --no-install was given";
            return null;
        }
        if (!OperatingSystem.IsLinux() || Which("apt-get") is null)
        {
            note = "etcd is not installed and there is no apt-get to install Debian's etcd-server";
            return null;
        }
        if (GetEuid() != 0)
        {
            note = "etcd is not installed and installing Debian's etcd-server needs root";
            return null;
        }
        say("etcd not found: installing Debian's etcd-server with apt-get (bounded to 5 minutes)");
        // Install first; refresh the package lists only when the install cannot find the package.
        if (!AptGet(say, "install", "-y", "--no-install-recommends", "etcd-server"))
        {
            AptGet(say, "update");
            AptGet(say, "install", "-y", "--no-install-recommends", "etcd-server");
        }
        if (Which("etcd") is { } installed)
        {
            note = "installed now from Debian's etcd-server";
            return installed;
        }
        note = "etcd is not installed and apt-get could not install Debian's etcd-server";
        return null;
    }

    /// <summary>`etcd --version`'s first line, e.g. "etcd Version: 3.4.23".</summary>
    public static string Version(string etcd)
    {
        var (code, output) = Run(etcd, TimeSpan.FromSeconds(20), "--version");
        return code == 0 ? output.Split('\n').FirstOrDefault()?.Trim() ?? "" : "";
    }

    private static bool AptGet(Action<string> say, params string[] args)
    {
        var (code, output) = Run("apt-get", TimeSpan.FromMinutes(5), args, ("DEBIAN_FRONTEND", "noninteractive"));
        var last = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).TakeLast(2);
        say($"  apt-get {string.Join(' ', args)}: exit {code}; {string.Join(" | ", last)}");
        return code == 0;
    }

    private static (int Code, string Output) Run(string file, TimeSpan timeout, string[] args, params (string Key, string Value)[] env)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        foreach (var (k, v) in env) info.Environment[k] = v;
        try
        {
            using var p = Process.Start(info)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(timeout))
            {
                p.Kill(entireProcessTree: true);
                p.WaitForExit(10_000);
                return (-1, "timed out");
            }
            return (p.ExitCode, stdout.Result + stderr.Result);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, e.Message);
        }
    }

    private static (int Code, string Output) Run(string file, TimeSpan timeout, params string[] args) => Run(file, timeout, args, []);

    public static string? Which(string name)
    {
        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]);
        return dirs.Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
    }

    [DllImport("libc", EntryPoint = "geteuid")]
    private static extern uint GetEuid();
}
