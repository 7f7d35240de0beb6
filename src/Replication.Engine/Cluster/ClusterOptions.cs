namespace Replication.Engine.Cluster;

/// <summary>
/// How to create (or reopen) an embedded cluster. When <see cref="Path"/> already holds a
/// cluster, its stored identity, node count, shard count and replication factor win; an explicit
/// conflicting value is an error (<see cref="ClusterOptionsException"/>), never a silent change.
/// </summary>
public sealed record ClusterOptions
{
    public required string Name { get; init; }
    /// <summary>Data folder; one sub-folder per node. Created if missing.</summary>
    public required string Path { get; init; }
    /// <summary>Nodes to run; null = what the folder holds, else <see cref="DefaultNodeCount"/>.</summary>
    public int? NodeCount { get; init; }
    /// <summary>Fixed number of shards keys hash to; null = stored, else <see cref="DefaultShardCount"/>.</summary>
    public int? ShardCount { get; init; }
    /// <summary>Replicas per shard; null = stored, else min(<see cref="DefaultReplicationFactor"/>, node count).</summary>
    public int? ReplicationFactor { get; init; }
    /// <summary>How the ring splits, moves and balances (a new cluster only; a stored cluster keeps its own). Null = the defaults.</summary>
    public ClusterSettings? Settings { get; init; }

    public const int DefaultNodeCount = 3;
    public const int DefaultShardCount = 4;
    public const int DefaultReplicationFactor = 3;
    public const int MaxNodeCount = 64;
    public const int MaxShardCount = 1024;
    /// <summary>Wall-clock length of one Raft tick (see <see cref="RaftTiming"/>).</summary>
    public TimeSpan TickInterval { get; init; } = RaftTiming.TickInterval;
    /// <summary>Election timeout in ticks (randomized in [n, 2n) per node and group); checked by <see cref="RaftTiming.Validate"/>.</summary>
    public int ElectionTicks { get; init; } = RaftTiming.DefaultElectionTicks;
    /// <summary>Heartbeat interval in ticks.</summary>
    public int HeartbeatTicks { get; init; } = RaftTiming.DefaultHeartbeatTicks;
    /// <summary>
    /// Shared secret every node and client must prove it knows (HMAC challenge, never sent). Null =
    /// a random 32-byte secret per start, kept in memory only (no remote client can connect then).
    /// Its ToString is redacted, so printing these options never shows it.
    /// </summary>
    public Transport.ClusterSecret? ClusterSecret { get; init; }
    /// <summary>
    /// A folder with the cluster CA (ca.crt) and a node certificate (node.crt, node.key; New-ReplicationCertificate):
    /// every connection to and from the nodes is then TLS 1.3, mutual, instead of the shared secret. Null = the secret.
    /// </summary>
    public string? CertificatePath { get; init; }
    /// <summary>Seed for election-timeout randomness; null = random.</summary>
    public int? Seed { get; init; }
    /// <summary>Compact a shard's Raft log once this many applied entries lie behind its last snapshot.</summary>
    public int SnapshotEntries { get; init; } = 10_000;
    /// <summary>Entries kept below the applied index at compaction, so a briefly lagging replica catches up from the log.</summary>
    public int SnapshotCatchUpEntries { get; init; } = 1_000;
    /// <summary>Target size of one chunk when a snapshot is streamed to a replica.</summary>
    public int SnapshotChunkBytes { get; init; } = 256 * 1024;
    /// <summary>Receives node events (never the secret).</summary>
    public Action<string>? Log { get; init; }
    /// <summary>How the nodes keep their state machines (NodeOptions.StoreLayout); null: as the cluster's nodes do (a node
    /// added later takes their layout), and one state.db per node for a new cluster. A reopened cluster keeps its layout: a
    /// different one asked for is refused (ClusterPathMismatch).</summary>
    public Storage.StoreLayout? StoreLayout { get; init; }
    /// <summary>Test hook: wraps each node's storage writes (node id, real storage) to inject faults.</summary>
    internal Func<int, Storage.INodeStorage, Storage.INodeStorage>? StorageDecorator { get; init; }
    /// <summary>Test hook: bytes of an incoming snapshot kept in memory before it is staged in a file (NodeHostOptions).</summary>
    internal int SnapshotStagingMemory { get; init; } = NodeHostOptions.DefaultSnapshotStagingMemory;
}
