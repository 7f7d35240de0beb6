namespace Replication.Engine.Cluster;

/// <summary>Replica comparison by Merkle tree (see README, "Consistency checks").</summary>
public partial interface IReplicationCluster
{
    /// <summary>
    /// Compares the running replicas of <paramref name="shard"/> (every shard when null) at ONE applied
    /// index per shard: each replica snapshots its state machine when its applied index reaches the
    /// target, a Merkle tree with the same key-range leaves is computed over every snapshot, and the
    /// leaves that differ from the leader's are reported (with the exact keys when a range is small).
    /// </summary>
    /// <exception cref="ShardNotFoundException">No such shard.</exception>
    /// <exception cref="QuorumUnavailableException">No leader, or a replica did not reach the target index, within <paramref name="timeout"/>.</exception>
    Task<IReadOnlyList<ReplicationConsistency>> CheckConsistencyAsync(int? shard, TimeSpan timeout, CancellationToken cancellationToken);
}
