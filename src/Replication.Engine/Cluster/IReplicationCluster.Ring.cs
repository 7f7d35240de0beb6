namespace Replication.Engine.Cluster;

/// <summary>The ring of hash ranges: splitting shards, and later moving them (see README, "The ring").</summary>
public partial interface IReplicationCluster
{
    /// <summary>
    /// Splits <paramref name="shard"/> at the middle of its hash range: it keeps the left half and a new shard, on the
    /// same replicas, takes the right half with its keys (moved inside each replica's state machine: nothing crosses
    /// the network). Writes and reads go on during the split; keys keep their versions. Returns both halves, the old
    /// shard first.
    /// </summary>
    /// <exception cref="ShardNotFoundException">No such shard.</exception>
    /// <exception cref="ClusterOptionsException">The shard owns a single hash and cannot split (ErrorId InvalidClusterOptions).</exception>
    /// <exception cref="QuorumUnavailableException">The metadata group or the shard has no quorum within <paramref name="timeout"/>.</exception>
    Task<IReadOnlyList<ReplicationShard>> SplitShardAsync(int shard, TimeSpan timeout, CancellationToken cancellationToken);
}
