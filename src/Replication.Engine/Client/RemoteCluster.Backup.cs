using Replication.Engine.Cluster;
using Replication.Engine.Storage;

namespace Replication.Engine.Client;

/// <summary>
/// Backup, node restore and consistency checks read the nodes' SQLite files directly (a consistent
/// read transaction on the leader's state.db; a node's folder), so they run where the nodes run: in
/// the process of an embedded cluster, or of a node started with Start-ReplicationNode. The client
/// protocol does not stream backups yet; from a remote shell these say so with a stable ErrorId.
/// </summary>
public sealed partial class RemoteCluster
{
    public Task<ReplicationBackup> BackupAsync(string path, IProgress<BackupProgress>? progress, TimeSpan timeout, CancellationToken cancellationToken) =>
        throw NotHere("Backup-ReplicationCluster");

    public Task<ReplicationBackup> BackupNodeColdAsync(int id, string path, IProgress<BackupProgress>? progress, CancellationToken cancellationToken) =>
        throw NotHere("Backup-ReplicationNode");

    public Task RestoreNodeAsync(int id, string backupPath, TimeSpan timeout, CancellationToken cancellationToken) =>
        throw NotHere("restoring a node");

    public Task<IReadOnlyList<ReplicationConsistency>> CheckConsistencyAsync(int? shard, TimeSpan timeout, CancellationToken cancellationToken) =>
        throw NotHere("Test-ReplicationConsistency");

    private NotSupportedRemotelyException NotHere(string what) =>
        new($"Cluster '{Name}' is remote: {what} reads the nodes' files, so run it in the process that hosts the nodes.");
}
