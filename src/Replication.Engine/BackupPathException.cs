namespace Replication.Engine;

/// <summary>
/// A backup or restore cannot use the folder it was given: a backup's target already holds files,
/// a restore's source holds no backup, or a restore's target already holds data. Nothing was written.
/// </summary>
public sealed class BackupPathException(string errorId, string path, string message) : ReplicationException(message)
{
    /// <summary>Backup-* -Path is a folder that is not empty (a backup never overwrites).</summary>
    public const string PathInUse = "BackupPathInUse";
    /// <summary>Test-ReplicationBackup / Restore-ReplicationCluster -Path holds no backup manifest.</summary>
    public const string NotFound = "BackupNotFound";
    /// <summary>Restore-ReplicationCluster -ClusterPath already holds files.</summary>
    public const string RestorePathInUse = "RestorePathInUse";
    /// <summary>A cold backup of one node lacks shards the restored cluster needs.</summary>
    public const string Incomplete = "BackupIncomplete";
    /// <summary>Restore-ReplicationCluster into a running cluster that already holds keys.</summary>
    public const string RestoreTargetNotEmpty = "RestoreTargetNotEmpty";
    /// <summary>A node restore was given a backup that is not a cold backup of that node of this cluster.</summary>
    public const string Mismatch = "BackupMismatch";

    public override string ErrorId { get; } = errorId;
    public override ReplicationErrorKind Kind => ErrorId == NotFound ? ReplicationErrorKind.NotFound : ReplicationErrorKind.InvalidArgument;
    public string Path { get; } = path;
}
