namespace Replication.Engine.Cluster;

/// <summary>
/// What an operator can do with a cluster, whether its nodes run in this process
/// (<see cref="EmbeddedCluster"/>) or elsewhere (a remote client, later). The PowerShell layer
/// talks only to this interface.
/// Thread-safety: every member is safe to call from any thread, concurrently.
/// Errors: members throw <see cref="ReplicationException"/> subclasses with stable error ids;
/// after <see cref="DisposeAsync"/> every member throws <see cref="ClusterNotRunningException"/>.
/// </summary>
public partial interface IReplicationCluster : IAsyncDisposable
{
    string Name { get; }
    /// <summary>Fresh identity per cluster (also after a restore). Persisted in the cluster folder.</summary>
    Guid Id { get; }
    ClusterMode Mode { get; }
    int ShardCount { get; }
    int ReplicationFactor { get; }
    /// <summary>Data folder of an embedded cluster; null for a remote one.</summary>
    string? Path { get; }
    /// <summary>Loopback endpoints ("127.0.0.1:port") of the nodes currently running.</summary>
    IReadOnlyList<string> Endpoints { get; }
    /// <summary>False once the cluster was removed (disposed).</summary>
    bool IsRunning { get; }

    IReadOnlyList<ReplicationNode> GetNodes();
    /// <exception cref="NodeNotFoundException">no node has this id.</exception>
    ReplicationNode GetNode(int id);
    IReadOnlyList<ReplicationShard> GetShards();

    /// <summary>Stops one node. <paramref name="kill"/> abandons it at once, as a crash would:
    /// nothing more is persisted, connections drop. Otherwise it stops cleanly. Returns the node's status after the stop
    /// (State Stopped), also when it was the last node this client could reach.</summary>
    /// <exception cref="NodeNotFoundException">no node has this id.</exception>
    Task<ReplicationNode> StopNodeAsync(int id, bool kill, CancellationToken cancellationToken);
    /// <summary>Starts a stopped node from its data folder; it catches up from the leader.</summary>
    Task StartNodeAsync(int id, CancellationToken cancellationToken);

    /// <summary>
    /// Writes a batch. Each write is proposed to its shard's leader (wherever it runs) and the
    /// batch is replicated as few log entries as possible. Results come back in input order;
    /// a write that failed on its own has <see cref="WriteResult.Error"/> set and left no trace:
    /// an invalid key or value (<see cref="InvalidKeyException"/>, checked before anything is proposed)
    /// or a version conflict (<see cref="VersionConflictException"/>). A write that could not be
    /// acknowledged within <paramref name="timeout"/> has a <see cref="QuorumUnavailableException"/>
    /// (its outcome is unknown). The method itself throws only for cluster-wide conditions
    /// (<see cref="ClusterNotRunningException"/>, cancellation).
    /// </summary>
    Task<IReadOnlyList<WriteResult>> WriteAsync(IReadOnlyList<KeyWrite> writes, WriteConcern concern, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>Reads one key; null when absent. A <see cref="ReadConsistency.Stale"/> read says which replica served it
    /// and how far behind it was (<see cref="ReplicationKey.ReadFrom"/>, <see cref="ReplicationKey.LagEntries"/>); with
    /// <paramref name="maxLag"/> a replica further behind refuses with <see cref="ReplicaTooStaleException"/> instead of
    /// answering (no fallback to the leader: the caller chose a replica read, and decides whether to pay for a leader read).
    /// Ignored for the other consistencies, which never lag.</summary>
    Task<ReplicationKey?> GetAsync(string key, ReadConsistency consistency, TimeSpan timeout, CancellationToken cancellationToken, long? maxLag = null);

    /// <summary>Streams every key starting with <paramref name="prefix"/> (all keys for "") in
    /// ordinal UTF-8 byte order, merged across shards.</summary>
    IAsyncEnumerable<ReplicationKey> ScanAsync(string prefix, ReadConsistency consistency, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>Waits until the given shard (or every shard when null) has a leader.
    /// Throws <see cref="QuorumUnavailableException"/> after <paramref name="timeout"/>.</summary>
    Task<IReadOnlyList<ReplicationShard>> WaitForLeadersAsync(int? shard, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>Stops every node. With <paramref name="deleteData"/> the data folder is deleted too.</summary>
    Task RemoveAsync(bool deleteData);
}
