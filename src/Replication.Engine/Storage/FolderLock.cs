namespace Replication.Engine.Storage;

/// <summary>
/// An exclusive operating-system lock on a data folder, held for the life of its owner (a node, or an
/// embedded cluster), so that a second opener — in this process or any other — is refused before it
/// touches anything (DESIGN.md, "One engine, every shape"). The lock is a file in the folder opened with
/// <see cref="FileShare.None"/>: .NET takes an flock(2) on Unix and a share-mode lock on Windows, both
/// owned by the open file, so a process killed with SIGKILL leaves no lock behind (the kernel drops it with
/// the process) and a second open in the same process conflicts as well. The lock file itself is never
/// deleted (deleting a lock file races with its next opener). Thread-safe.
/// </summary>
public sealed class FolderLock : IDisposable
{
    private readonly FileStream _file;

    private FolderLock(string folder, FileStream file)
    {
        Folder = folder;
        _file = file;
    }

    /// <summary>The locked folder.</summary>
    public string Folder { get; }

    /// <summary>
    /// Creates <paramref name="folder"/> if needed and locks it through <paramref name="fileName"/> within it.
    /// Fails at once (no waiting) when the lock is held.
    /// </summary>
    /// <exception cref="DataPathInUseException">Another owner holds the lock (its process id where the OS tells it).</exception>
    public static FolderLock Acquire(string folder, string fileName)
    {
        Directory.CreateDirectory(folder);
        string path = System.IO.Path.Combine(folder, fileName);
        try
        {
            var file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None);
            return new FolderLock(folder, file);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException && IsSharingViolation(e))
        {
            throw new DataPathInUseException(folder, HolderOf(path)) { Target = folder };
        }
    }

    public void Dispose() => _file.Dispose();

    // On Unix the failed flock surfaces as an IOException with EWOULDBLOCK (11) or EAGAIN; on Windows as a
    // sharing violation (0x80070020).
    private static bool IsSharingViolation(IOException e) =>
        !OperatingSystem.IsWindows() ? e.HResult is 11 or 35 : (e.HResult & 0xFFFF) is 32 or 33;

    /// <summary>
    /// The process holding an flock on <paramref name="path"/> (Linux only; null when unknown): the pids of
    /// /proc/locks' FLOCK lines whose /proc/&lt;pid&gt;/fd holds a descriptor of that file.
    /// </summary>
    private static int? HolderOf(string path)
    {
        if (!OperatingSystem.IsLinux()) return null;
        try
        {
            string full = System.IO.Path.GetFullPath(path);
            // Lines look like: "1: FLOCK  ADVISORY  WRITE 12345 fd:01:1234567 0 EOF".
            foreach (var line in File.ReadLines("/proc/locks"))
            {
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                int at = Array.IndexOf(parts, "FLOCK");
                if (at < 0 || parts.Length < at + 4 || !int.TryParse(parts[at + 3], out int pid)) continue;
                string fds = $"/proc/{pid}/fd";
                if (!Directory.Exists(fds)) continue;
                foreach (var fd in Directory.EnumerateFileSystemEntries(fds))
                    if (new FileInfo(fd).LinkTarget == full) return pid;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // informational only: another user's process, or it exited meanwhile
        }
        return null;
    }
}
