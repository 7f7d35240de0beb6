namespace Replication;

/// <summary>A snapshot of one shard's placement and Raft state. <see cref="Leader"/> is 0 when no leader is known.
/// <see cref="LagEntries"/> and <see cref="LagSeconds"/> are those of the shard's furthest-behind replica among the nodes
/// that reported in the last 2 s (entries not applied yet; seconds since it last had applied every entry it knew
/// committed, to a status period of 250 ms), as <see cref="ReplicationNode"/> defines them per node; LagEntries is null
/// when one of them does not know its lag (or no node reported the shard in that time).</summary>
public sealed record ReplicationShard
{
    public required string Cluster { get; init; }
    public required int Id { get; init; }
    public int Leader { get; init; }
    public required IReadOnlyList<int> Voters { get; init; }
    public IReadOnlyList<int> Learners { get; init; } = Array.Empty<int>();
    /// <summary>The nodes the placement wants the shard on; differs from <see cref="Voters"/> while replicas move.</summary>
    public IReadOnlyList<int> Placement { get; init; } = Array.Empty<int>();
    /// <summary>The highest term known for the shard (also while it has no leader).</summary>
    public long Term { get; init; }
    public long CommitIndex { get; init; }
    /// <summary>The applied index of the replica this view comes from (the leader's when it has one).</summary>
    public long AppliedIndex { get; init; }
    /// <summary>The range of 64-bit key hashes the shard owns: [HashStart, HashEnd], both inclusive (Ring/KeyHash).</summary>
    public ulong HashStart { get; init; }
    public ulong HashEnd { get; init; }
    public long KeyCount { get; init; }
    public long? LagEntries { get; init; }
    public double LagSeconds { get; init; }

    /// <summary>The voters' and learners' member ids (Transport.ReplicaIds) in the membership the reporting replica has
    /// committed (not its latest, which a new leader may replace): carried in status reports for the control loop (whether a
    /// replica of a node was removed: ClusterNode.Rebuild.cs, RemovedFrom), never shown (operators see nodes).
    /// Null in a report from a node that does not send them.</summary>
    [System.Text.Json.Serialization.JsonInclude]
    internal IReadOnlyList<int>? Members { get; init; }
}
