namespace Replication.Engine.Cluster;

/// <summary>Backups of a running cluster (see README, "Backup and restore"). Verification and restore
/// need no running cluster: <see cref="Backups.Verify"/>, <see cref="EmbeddedCluster.RestoreAsync"/>.</summary>
public partial interface IReplicationCluster
{
    /// <summary>
    /// Hot backup into the empty (or new) folder <paramref name="path"/>: for each shard, a
    /// linearizable read is confirmed on its leader, then the shard is copied from the leader's
    /// state.db in one read transaction, so the copy is the shard's exact state at one committed
    /// index (at or after the confirmation), while writes continue. Then backup.json is written
    /// (last, atomically). Each shard has its own index; shards are not cut at a common instant.
    /// </summary>
    /// <exception cref="BackupPathException">The folder is not empty (BackupPathInUse).</exception>
    /// <exception cref="QuorumUnavailableException">A shard's leader could not confirm a read within <paramref name="timeout"/>; the partial backup is removed.</exception>
    Task<ReplicationBackup> BackupAsync(string path, IProgress<BackupProgress>? progress, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>
    /// Cold backup of one node into the empty (or new) folder <paramref name="path"/>: the node is
    /// stopped cleanly (if running), its raft.db and state.db are copied with SQLite's backup API,
    /// and it is started again, also when the copy fails. Refused if stopping the node would leave
    /// one of its shards without a running quorum, so the cluster stays available throughout.
    /// </summary>
    /// <exception cref="NodeNotFoundException">No such node.</exception>
    /// <exception cref="QuorumAtRiskException">The node's shards would lose their quorum; nothing was stopped.</exception>
    /// <exception cref="BackupPathException">The folder is not empty (BackupPathInUse).</exception>
    Task<ReplicationBackup> BackupNodeColdAsync(int id, string path, IProgress<BackupProgress>? progress, CancellationToken cancellationToken);

    /// <summary>
    /// Restores node <paramref name="id"/> from a cold backup of that same node: verifies it, stops the
    /// node, replaces its raft.db and state.db with the backup's, and starts it; it then catches up
    /// from its peers (its leaders see from its heartbeat answers that it holds less than it once
    /// acknowledged, and probe it from there). The node's vote and log go back in time, as after a
    /// disk that lost writes: do it only while the other replicas are healthy.
    /// <paramref name="timeout"/> is kept for callers; the restore itself does not wait on the cluster.
    /// </summary>
    /// <exception cref="BackupCorruptException">Verification failed; nothing was changed.</exception>
    /// <exception cref="BackupPathException">Not a cold backup of this node of this cluster (BackupMismatch).</exception>
    /// <exception cref="QuorumAtRiskException">Stopping the node would cost a shard its running quorum.</exception>
    Task RestoreNodeAsync(int id, string backupPath, TimeSpan timeout, CancellationToken cancellationToken);
}
