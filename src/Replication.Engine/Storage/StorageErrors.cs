using Microsoft.Data.Sqlite;

namespace Replication.Engine.Storage;

/// <summary>
/// Sorts storage exceptions into the three cases the node host treats differently (NodeHost.DiskFull.cs):
/// a full disk (nothing was written; retry once there is room), damaged data (refuse to serve it), and every
/// other failure, a failed fsync first among them (the node stops: after a failed fsync the kernel may have
/// dropped the dirty pages, so what the file holds is unknown, and retrying the fsync could report success
/// for data that is gone — PostgreSQL's "fsyncgate"). Stateless, thread-safe.
/// </summary>
internal static class StorageErrors
{
    private const int SqliteFull = 13;    // SQLITE_FULL: "database or disk is full" (a write returned ENOSPC, or max_page_count)
    private const int SqliteCorrupt = 11; // SQLITE_CORRUPT: "database disk image is malformed"
    private const int SqliteNotADb = 26;  // SQLITE_NOTADB: "file is not a database" (e.g. a zeroed first page)
    private const int Enospc = 28;        // Linux and macOS errno
    private const int WindowsDiskFull = unchecked((int)0x80070070);       // ERROR_DISK_FULL
    private const int WindowsHandleDiskFull = unchecked((int)0x80070027); // ERROR_HANDLE_DISK_FULL

    /// <summary>
    /// True for SQLITE_FULL and for an <see cref="IOException"/> with ENOSPC (staged snapshot files). Not for an I/O
    /// error of an fsync (SQLITE_IOERR_FSYNC), even one caused by ENOSPC: a failed fsync is never retried.
    /// </summary>
    public static bool IsDiskFull(Exception e) => e switch
    {
        SqliteException s => s.SqliteErrorCode == SqliteFull,
        IOException io => OperatingSystem.IsWindows() ? io.HResult is WindowsDiskFull or WindowsHandleDiskFull : io.HResult == Enospc,
        _ => false,
    };

    /// <summary>True when SQLite found a file's content malformed (a torn or zeroed page, a file that is not a database).</summary>
    public static bool IsCorruption(Exception e) => e is SqliteException { SqliteErrorCode: SqliteCorrupt or SqliteNotADb };

    /// <summary>Runs <paramref name="open"/> (opening or checking <paramref name="filePath"/>), reporting SQLite's corruption
    /// errors as <see cref="StorageCorruptException"/> naming the file, so a damaged replica is refused like one with a bad
    /// checksum instead of failing with a raw SqliteException.</summary>
    public static T MapCorruption<T>(string filePath, Func<T> open)
    {
        try
        {
            return open();
        }
        catch (Exception e) when (IsCorruption(e))
        {
            throw new StorageCorruptException($"'{filePath}' is damaged: {e.Message}") { Target = filePath };
        }
    }
}
