namespace Replication.Engine.Cluster;

/// <summary>What a <see cref="NodeHost"/> needs to start: identity, data folder, hosted groups and timing.</summary>
internal sealed record NodeHostOptions
{
    public required int NodeId { get; init; }
    public required Guid ClusterId { get; init; }
    public required string DataPath { get; init; }
    /// <summary>Every connection to and from this node authenticates with it.</summary>
    public required Security.TransportSecurity Security { get; init; }
    /// <summary>Serves authenticated client connections; null = the node refuses clients.</summary>
    public Client.IClientRequestHandler? ClientHandler { get; init; }
    public TimeSpan TickInterval { get; init; } = RaftTiming.TickInterval;
    public int ElectionTicks { get; init; } = RaftTiming.DefaultElectionTicks;
    public int HeartbeatTicks { get; init; } = RaftTiming.DefaultHeartbeatTicks;
    public int? Seed { get; init; }
    /// <summary>Idle groups stop heartbeating and their followers rely on node liveness (RaftNode.Quiesce.cs, NodeHost.Liveness.cs).</summary>
    public bool Quiesce { get; init; } = true;
    /// <summary>Compact a group's log once this many applied entries lie between its last snapshot and the compaction point.</summary>
    public int SnapshotEntries { get; init; } = 10_000;
    /// <summary>Entries kept below the applied index when compacting, so a briefly lagging follower catches up from the log, not a snapshot.</summary>
    public int SnapshotCatchUpEntries { get; init; } = 1_000;
    /// <summary>Target size of one snapshot chunk on the wire. (1 MiB was tried together with the sender's off-loop reader: one
    /// ring bench run streamed a 33 MB shard at 11-12 MB/s, against 32-37 MB/s the run before with 256 KiB read on the loop
    /// thread; not adopted until measured apart.)</summary>
    public int SnapshotChunkBytes { get; init; } = 256 * 1024;
    /// <summary>
    /// Snapshot chunks a transfer's sender holds read and not yet acknowledged (NodeHost.Snapshots.cs): 16 MiB of buffers per
    /// transfer with 256 KiB chunks. The reader reads on while the window has room and waits only when it is full, so the
    /// stream runs at most a window per acknowledgment round trip (14-89 ms median for a chunk on a loaded machine, ring
    /// bench): 16 chunks (4 MiB) capped it near 50-100 MB/s, and the reader waited up to a second per 33 MB for the window.
    /// The chunks travel on a connection of their own (TcpTransport.Send), so a full window queues ahead of no Raft message.
    /// The receiver stages what it is sent (NodeHostOptions.SnapshotStagingMemory in memory) whatever the window.
    /// </summary>
    public int SnapshotWindow { get; init; } = 64;
    /// <summary>
    /// Bytes of an incoming snapshot kept in memory; a larger one is staged in a file (NodeHost.Snapshots.cs). A staging
    /// file's new blocks made every fsync on the disk wait (ext4, data=ordered) while they were written back: every
    /// writer of the ring bench stalled about a second while a 33 MB shard streamed.
    /// </summary>
    public int SnapshotStagingMemory { get; init; } = DefaultSnapshotStagingMemory;
    public const int DefaultSnapshotStagingMemory = 64 << 20;
    /// <summary>A snapshot transfer whose next acknowledgment does not come within this time is abandoned (and retried by Raft).</summary>
    public TimeSpan SnapshotAckTimeout { get; init; } = TimeSpan.FromSeconds(10);
    public Action<string>? Log { get; init; }
    /// <summary>The layout of a new data folder's state machine (NodeOptions.StoreLayout).</summary>
    public Storage.StoreLayout StoreLayout { get; init; } = Storage.StoreLayout.FilePerNode;
    /// <summary>
    /// For a WriteConcern.All write whose group this node no longer leads (it stepped down while the write waited for the
    /// voters to apply it; only a leader tracks the followers' applied indexes): whether every voter (member ids) has applied
    /// the group through the index, by what this node knows outside Raft (ClusterNode: its peers' status reports). Called on
    /// the loop thread; must be quick and thread-safe. Null: such a write waits until it times out.
    /// </summary>
    public Func<int, long, IReadOnlyCollection<int>, bool>? VotersApplied { get; init; }
    /// <summary>Records an event in the node's history (type, group, term, sentence); called on the loop thread. Null = none.</summary>
    public Action<ReplicationEventType, int, long, string>? RecordEvent { get; init; }
    /// <summary>Wraps the node's storage writes (fault injection in tests); null = the real stores.</summary>
    public Func<int, Storage.INodeStorage, Storage.INodeStorage>? StorageDecorator { get; init; }
}
