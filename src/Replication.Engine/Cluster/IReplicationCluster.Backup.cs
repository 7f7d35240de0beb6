namespace Replication.Engine.Cluster;

/// <summary>Backups and restores of a running cluster (see README, "Backup and restore"). They travel over the
/// client protocol, so they work the same on an embedded cluster and from a shell that has only the endpoints.
/// Verification needs no cluster: <see cref="Backups.Verify"/>.</summary>
public partial interface IReplicationCluster
{
    /// <summary>
    /// Hot backup into the empty (or new) folder <paramref name="path"/>: a consistent cut across every shard
    /// (if the backup holds a write, it holds every write acknowledged before that write began), taken under a
    /// short write barrier that is measured and reported (<see cref="ReplicationBackup.BarrierPause"/>); then each
    /// shard's rows are streamed from the node holding its capture into shard-NNNN.db and checked against the
    /// holder's key count and SHA-256; backup.json is written last, atomically. Writes go on throughout.
    /// </summary>
    /// <exception cref="BackupPathException">The folder is not empty (BackupPathInUse).</exception>
    /// <exception cref="QuorumUnavailableException">No consistent cut could be taken within <paramref name="timeout"/>; the partial backup is removed.</exception>
    Task<ReplicationBackup> BackupAsync(string path, IProgress<BackupProgress>? progress, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>
    /// Cold backup of one running node into the empty (or new) folder <paramref name="path"/>: the node hands its
    /// leaderships away, holds its loop while its raft.db and state.db are copied (a node at rest), resumes, and
    /// the copies are streamed here and checked by SHA-256. Refused if the node's shards would lose their running
    /// quorum while it is quiet.
    /// </summary>
    /// <exception cref="NodeNotFoundException">No such node.</exception>
    /// <exception cref="QuorumAtRiskException">The node's shards would lose their quorum; nothing was done.</exception>
    /// <exception cref="BackupPathException">The folder is not empty (BackupPathInUse).</exception>
    Task<ReplicationBackup> BackupNodeColdAsync(int id, string path, IProgress<BackupProgress>? progress, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>
    /// Rebuilds node <paramref name="id"/> by membership change (ClusterNode.Rebuild.cs): out of every group, its
    /// data dropped — or replaced by the cold backup of that node at <paramref name="backupPath"/> (verified first,
    /// then uploaded to the node) — then back in as a learner that catches up and is promoted. No term or vote
    /// goes back in time. Waits until the node is a voter of its shards again, unless <paramref name="noWait"/>.
    /// </summary>
    /// <exception cref="BackupCorruptException">The backup failed verification; nothing was changed.</exception>
    /// <exception cref="BackupPathException">Not a cold backup of this node of this cluster (BackupMismatch).</exception>
    /// <exception cref="QuorumAtRiskException">Removing the node would cost a shard its running quorum; nothing was changed.</exception>
    Task<RebuildResult> RestoreNodeAsync(int id, string? backupPath, bool noWait, IProgress<BackupProgress>? progress, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>
    /// Loads a verified backup into this cluster, which must hold no keys: every key with its value and version,
    /// written through Raft like any write (its Index is the index of that write). The backup's shard count does
    /// not matter: keys go to the shards they hash to here. Returns the number of keys loaded.
    /// </summary>
    /// <exception cref="BackupCorruptException">The backup failed verification; nothing was written.</exception>
    /// <exception cref="BackupPathException">The cluster already holds keys (RestoreTargetNotEmpty), or a cold backup lacks shards (BackupIncomplete).</exception>
    Task<long> LoadBackupAsync(string backupPath, IProgress<BackupProgress>? progress, TimeSpan timeout, CancellationToken cancellationToken);
}
