using System.Diagnostics;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// Operations on a backup folder that need no running cluster. Thread-safe.
/// Taking backups: <see cref="IReplicationCluster.BackupAsync"/> (hot) and
/// <see cref="IReplicationCluster.BackupNodeColdAsync"/> (cold); restoring: <see cref="IReplicationCluster.LoadBackupAsync"/>
/// (into a cluster) and <see cref="EmbeddedCluster.RestoreAsync"/> (a new embedded cluster).
/// </summary>
public static class Backups
{
    /// <summary>
    /// Verifies a backup: manifest checksum, every file's size and SHA-256, and that each file opens
    /// and holds the stated shards, key counts, indexes and terms. Returns the backup with
    /// <see cref="ReplicationBackup.Valid"/> = true.
    /// </summary>
    /// <exception cref="BackupPathException">The folder holds no backup (BackupNotFound).</exception>
    /// <exception cref="BackupCorruptException">A check failed; the exception names the file.</exception>
    public static ReplicationBackup Verify(string path, CancellationToken cancellationToken) => Verify(path, null, cancellationToken);

    /// <summary><see cref="Verify(string, CancellationToken)"/>, reporting a step per file checked and per shard opened.</summary>
    public static ReplicationBackup Verify(string path, IProgress<BackupProgress>? progress, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        var m = BackupVerifier.Verify(path, cancellationToken, progress);
        return m.ToBackup(path, watch.Elapsed, valid: true, problem: null);
    }

    /// <summary>
    /// The backup as its manifest describes it, WITHOUT trusting it (no checksum or file checks),
    /// marked <see cref="ReplicationBackup.Valid"/> = false with <paramref name="problem"/>; null when
    /// the manifest cannot even be parsed. For reporting a backup that failed <see cref="Verify"/>.
    /// </summary>
    public static ReplicationBackup? TryDescribe(string path, string problem)
    {
        try
        {
            return BackupManifest.Parse(path)?.ToBackup(path, TimeSpan.Zero, valid: false, problem: problem);
        }
        catch (Exception ex) when (ex is IOException or System.Text.Json.JsonException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Creates the backup folder or checks that it is empty; true when it was created here.</summary>
    /// <exception cref="BackupPathException">The folder is not empty, or is a file (BackupPathInUse).</exception>
    internal static bool PrepareFolder(string path)
    {
        if (Directory.Exists(path))
        {
            if (Directory.EnumerateFileSystemEntries(path).Any())
                throw new BackupPathException(BackupPathException.PathInUse, path, $"'{path}' is not empty; a backup goes into a new or empty folder and never overwrites.") { Target = path };
            return false;
        }
        if (File.Exists(path))
            throw new BackupPathException(BackupPathException.PathInUse, path, $"'{path}' is a file; a backup needs a folder.") { Target = path };
        Directory.CreateDirectory(path);
        return true;
    }

    /// <summary>Removes what a failed backup wrote (best effort: the original error matters more).</summary>
    internal static void RemovePartial(string path, bool createdFolder, IEnumerable<string> written)
    {
        try
        {
            foreach (var f in written)
            {
                File.Delete(f);
                File.Delete(f + "-journal");
            }
            if (createdFolder && Directory.Exists(path) && !Directory.EnumerateFileSystemEntries(path).Any()) Directory.Delete(path);
        }
        catch (IOException)
        {
            // best effort
        }
    }
}
