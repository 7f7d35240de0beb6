using Replication.Engine.Cluster;
using Replication.Engine.Storage;

namespace Replication.Engine.Member;

/// <summary>
/// Backup, node restore and consistency checks are built on reading every replica's SQLite files
/// in one process (EmbeddedCluster.Backup.cs, EmbeddedCluster.Consistency.cs). A process node holds
/// only its own replicas, and the client protocol does not stream shard files between nodes yet,
/// so on a multi-process cluster these say so with a stable ErrorId instead of doing half the job.
/// A node's folder can still be copied cold: stop the node, copy its folder, start it.
/// </summary>
public sealed partial class ProcessNode
{
    public Task<ReplicationBackup> BackupAsync(string path, IProgress<BackupProgress>? progress, TimeSpan timeout, CancellationToken cancellationToken) =>
        throw NotYet("Backup-ReplicationCluster");

    public Task<ReplicationBackup> BackupNodeColdAsync(int id, string path, IProgress<BackupProgress>? progress, CancellationToken cancellationToken) =>
        throw NotYet("Backup-ReplicationNode");

    public Task RestoreNodeAsync(int id, string backupPath, TimeSpan timeout, CancellationToken cancellationToken) =>
        throw NotYet("restoring a node");

    public Task<IReadOnlyList<ReplicationConsistency>> CheckConsistencyAsync(int? shard, TimeSpan timeout, CancellationToken cancellationToken) =>
        throw NotYet("Test-ReplicationConsistency");

    private static NotSupportedRemotelyException NotYet(string what) =>
        new($"{what} needs every replica's files in one process; it runs on embedded clusters. For a node of a multi-process cluster, stop it and copy its folder (a cold copy).");
}
