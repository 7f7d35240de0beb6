namespace Replication.Engine.Cluster;

/// <summary>The consistent-hash ring: nodes joining and leaving, moves, pins and splits (see README, "The ring").</summary>
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

    /// <summary>One row per registered node: its tokens and share of the hash space, the shards it holds, is placed on, and leads.</summary>
    Task<IReadOnlyList<ReplicationRingEntry>> GetRingAsync(CancellationToken cancellationToken);

    /// <summary>Every replica move between the shards' memberships and the ring's placement, still to make. The control loop
    /// makes them by itself, at most ClusterSettings.MaxConcurrentMoves shards at a time.</summary>
    Task<IReadOnlyList<ReplicationMove>> GetMovesAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Adds a node running in this process (embedded cluster): it joins through the same path as a node process and the
    /// ring moves its share of the replicas to it. Returns once it is registered; <see cref="WaitForPlacementAsync"/>
    /// waits for the moves. <paramref name="zone"/>: its failure domain; <paramref name="learner"/>: it holds non-voting
    /// copies of every shard only (asynchronous replication).
    /// </summary>
    /// <exception cref="NotSupportedRemotelyException">A cluster of node processes: a node joins by being started
    /// (Start-ReplicationNode -Join) in its own process; <see cref="WaitForNodeAsync"/> then follows it.</exception>
    Task<ReplicationNode> AddNodeAsync(string? zone, bool learner, CancellationToken cancellationToken);

    /// <summary>Waits until a node listening on <paramref name="endpoint"/> is registered (a node process that was started with
    /// -Join), and returns it.</summary>
    /// <exception cref="EndpointUnreachableException">No node with that endpoint registered within <paramref name="timeout"/>.</exception>
    Task<ReplicationNode> WaitForNodeAsync(string endpoint, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>Sets a node's zone (an empty string clears it) and whether it is learner-only; null leaves either as it is.
    /// The ring moves replicas accordingly.</summary>
    Task SetNodeRoleAsync(int id, string? zone, bool? learner, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>
    /// Starts removing node <paramref name="id"/>: it is marked leaving, the ring moves its replicas to the other nodes
    /// (never below quorum), then it is deregistered and stops (an embedded node's folder is deleted).
    /// <see cref="WaitForPlacementAsync"/> waits for that.
    /// </summary>
    /// <exception cref="ReplicationFactorAtRiskException">Without <paramref name="force"/>: the other nodes could not hold
    /// ReplicationFactor voters of every shard. Nothing changed.</exception>
    Task RemoveNodeAsync(int id, bool force, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>Pins <paramref name="shard"/>'s voters to <paramref name="nodes"/> (in order; the ring fills the rest), or drops
    /// its pin when null. The control loop then moves the replicas.</summary>
    Task PinShardAsync(int shard, IReadOnlyList<int>? nodes, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>
    /// Waits until no move remains, no node is leaving, and every shard has a leader and its replication factor in voters;
    /// reports the number of moves left as it goes.
    /// </summary>
    /// <exception cref="QuorumUnavailableException">Not settled within <paramref name="timeout"/> (the message says what remains).</exception>
    Task WaitForPlacementAsync(IProgress<int>? movesLeft, TimeSpan timeout, CancellationToken cancellationToken);
}
