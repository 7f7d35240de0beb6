namespace Replication.Engine.Member;

/// <summary>How to run one node of a multi-process cluster in this process (<see cref="ProcessNode.StartAsync"/>).</summary>
public sealed record ProcessNodeOptions
{
    /// <summary>The node's data folder (node.json, raft.db, state.db). Created if missing; a restart with the same folder resumes the same node.</summary>
    public required string Path { get; init; }
    /// <summary>"host:port" to listen on, for nodes and clients alike; peers dial exactly this, so it must be an address they can reach (not 0.0.0.0) and a fixed port.</summary>
    public required string Listen { get; init; }
    /// <summary>"host:port" of any running node to join through; null = found a new cluster (or restart, when the folder holds a node).</summary>
    public string? Join { get; init; }
    /// <summary>The shared cluster secret. Held in memory only, never written to the folder.</summary>
    public required Transport.ClusterSecret Secret { get; init; }
    /// <summary>Allow a listen address other than loopback (the node is then reachable from other machines).</summary>
    public bool AllowRemote { get; init; }
    /// <summary>Name of a new cluster (founding only).</summary>
    public string Name { get; init; } = "replication";
    /// <summary>Shards of a new cluster (founding only).</summary>
    public int ShardCount { get; init; } = Cluster.ClusterOptions.DefaultShardCount;
    /// <summary>Target replicas per shard of a new cluster (founding only); reached as nodes join.</summary>
    public int ReplicationFactor { get; init; } = Cluster.ClusterOptions.DefaultReplicationFactor;
    public TimeSpan TickInterval { get; init; } = TimeSpan.FromMilliseconds(10);
    public int ElectionTicks { get; init; } = 15;
    public int HeartbeatTicks { get; init; } = 3;
    /// <summary>How long a join may take (dialling the seed included).</summary>
    public TimeSpan JoinTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Receives node events (never the secret).</summary>
    public Action<string>? Log { get; init; }
}
