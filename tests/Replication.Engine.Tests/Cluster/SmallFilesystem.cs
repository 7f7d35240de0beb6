using System.Diagnostics;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// A small real filesystem for disk-full tests: a tmpfs of a fixed size mounted on a fresh folder under the temp
/// folder, and unmounted and removed on dispose. Needs Linux and root (CAP_SYS_ADMIN); <see cref="TryMount"/> returns
/// null (and logs why) where it cannot be had, so the caller falls back to the storage fault hooks.
/// </summary>
internal sealed class SmallFilesystem : IDisposable
{
    private SmallFilesystem(string path, int sizeMb)
    {
        Path = path;
        SizeMb = sizeMb;
    }

    public string Path { get; }
    public int SizeMb { get; }

    public static SmallFilesystem? TryMount(int sizeMb, Action<string> log)
    {
        if (!OperatingSystem.IsLinux() || !Environment.IsPrivilegedProcess)
        {
            log($"no small filesystem: {(OperatingSystem.IsLinux() ? "not root" : "not Linux")}");
            return null;
        }
        string path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "repl-tmpfs-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(path);
        var (code, text) = Run("mount", "-t", "tmpfs", "-o", $"size={sizeMb}m,mode=0700", "tmpfs", path);
        if (code == 0) return new SmallFilesystem(path, sizeMb);
        log($"no small filesystem: mount exited {code}: {text}");
        Directory.Delete(path);
        return null;
    }

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools(); // pooled readers hold files open
        if (Run("umount", Path).Code != 0) Run("umount", "-l", Path); // lazily, if something still holds a file
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }

    private static (int Code, string Text) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string text = p.StandardError.ReadToEnd() + p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(30_000)) p.Kill();
        return (p.ExitCode, text.Trim());
    }
}
