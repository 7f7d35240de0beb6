namespace Replication.Engine.Cluster;

/// <summary>
/// How to run one node in this process (<see cref="ClusterNode.StartAsync"/>): alone (Start-ReplicationNode -Path)
/// or beside others (an embedded cluster starts N of them). Immutable.
/// </summary>
public sealed record NodeOptions
{
    /// <summary>The node's data folder (node.json, raft.db, state.db, node.lock). Created if missing; a restart with the same folder resumes the same node.</summary>
    public required string Path { get; init; }
    /// <summary>"host:port" to listen on, for nodes and clients alike; peers dial exactly this, so it must be an address they can reach (not 0.0.0.0). Port 0 takes a free port (an embedded cluster's nodes).</summary>
    public required string Listen { get; init; }
    /// <summary>"host:port" of any running node to join through; null = found a new cluster (or restart, when the folder holds a node).</summary>
    public string? Join { get; init; }
    /// <summary>How every connection to and from this node is protected: the shared cluster secret (held in memory
    /// only, never written to the folder), or TLS with the node's certificates (a node-role certificate folder).</summary>
    public required Security.TransportSecurity Security { get; init; }
    /// <summary>The role a joining node registers with (joining only: a registered node's role is the registry's, changed by
    /// <see cref="IReplicationCluster.SetNodeRoleAsync"/>). A founding node is always a voter.</summary>
    public NodeRole Role { get; init; } = NodeRole.Voter;
    /// <summary>The failure-domain label a joining node registers with (joining only, like <see cref="Role"/>); null = none.</summary>
    public string? Zone { get; init; }
    /// <summary>Allow a listen address other than loopback (the node is then reachable from other machines).</summary>
    public bool AllowRemote { get; init; }
    /// <summary>Name of a new cluster (founding only).</summary>
    public string Name { get; init; } = "replication";
    /// <summary>
    /// Called with the cluster's name as soon as it is known and before the node founds, joins or registers anything:
    /// founding, <see cref="Name"/>; joining, the seed's (asked first, over its own connection); restarting, the folder's.
    /// An exception it throws fails the start as it is, with nothing registered in the cluster and no identity written
    /// (Start-ReplicationNode claims the name in its session this way: a refusal after the join would leave a registered
    /// node that never runs). Null: none.
    /// </summary>
    public Action<string>? ClaimName { get; init; }
    /// <summary>Id of a new cluster (founding only); null = a fresh one.</summary>
    public Guid? ClusterId { get; init; }
    /// <summary>Shards of a new cluster (founding only).</summary>
    public int ShardCount { get; init; } = ClusterOptions.DefaultShardCount;
    /// <summary>Target replicas per shard of a new cluster (founding only); reached as nodes join.</summary>
    public int ReplicationFactor { get; init; } = ClusterOptions.DefaultReplicationFactor;
    /// <summary>How the ring of a new cluster splits, moves and balances (founding only).</summary>
    public ClusterSettings Settings { get; init; } = ClusterSettings.Default;
    /// <summary>Wall-clock length of one Raft tick (see <see cref="RaftTiming"/>).</summary>
    public TimeSpan TickInterval { get; init; } = RaftTiming.TickInterval;
    /// <summary>Election timeout in ticks (randomized in [n, 2n) per group); checked by <see cref="RaftTiming.Validate"/> at start.</summary>
    public int ElectionTicks { get; init; } = RaftTiming.DefaultElectionTicks;
    /// <summary>Heartbeat interval in ticks.</summary>
    public int HeartbeatTicks { get; init; } = RaftTiming.DefaultHeartbeatTicks;
    /// <summary>Seed for election-timeout randomness; null = random.</summary>
    public int? Seed { get; init; }
    /// <summary>Compact a group's log once this many applied entries lie behind its last snapshot.</summary>
    public int SnapshotEntries { get; init; } = 10_000;
    /// <summary>Entries kept below the applied index at compaction, so a briefly lagging replica catches up from the log.</summary>
    public int SnapshotCatchUpEntries { get; init; } = 1_000;
    /// <summary>Target size of one chunk when a snapshot is streamed to a replica.</summary>
    public int SnapshotChunkBytes { get; init; } = 256 * 1024;
    /// <summary>How long a join may take (dialling the seed included).</summary>
    public TimeSpan JoinTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>
    /// Discard raft.db and state.db before starting (node.json is kept): for a node whose files are damaged and
    /// that is being rebuilt (Restore-ReplicationNode); it comes back empty and takes its data from its peers.
    /// </summary>
    public bool DiscardStores { get; init; }
    /// <summary>Receives node events (never the secret).</summary>
    public Action<string>? Log { get; init; }
    /// <summary>
    /// Starts a stopped node hosted in this same process (an embedded cluster's sibling), when asked through
    /// the client protocol (Start-ReplicationNode -Id from a remote shell); null = only this node runs here.
    /// </summary>
    public Func<int, CancellationToken, Task<bool>>? StartSibling { get; init; }
    /// <summary>
    /// How a NEW data folder keeps the state machine (<see cref="Storage.StoreLayout"/>); a folder that holds a state machine
    /// already keeps the layout it has (state.db, or the shards folder).
    /// </summary>
    public Storage.StoreLayout StoreLayout { get; init; } = Storage.StoreLayout.FilePerNode;
    /// <summary>Test hook: wraps the node's storage writes (node id, real storage) to inject faults.</summary>
    internal Func<int, Storage.INodeStorage, Storage.INodeStorage>? StorageDecorator { get; init; }
    /// <summary>Test hook: bytes of an incoming snapshot kept in memory before it is staged in a file (NodeHostOptions).</summary>
    internal int SnapshotStagingMemory { get; init; } = NodeHostOptions.DefaultSnapshotStagingMemory;
}
