namespace Replication.Engine.Cluster;

/// <summary>A snapshot of one shard's placement and Raft state. <see cref="Leader"/> is 0 when no leader is known.</summary>
public sealed record ReplicationShard
{
    public required string Cluster { get; init; }
    public required int Id { get; init; }
    public int Leader { get; init; }
    public required IReadOnlyList<int> Voters { get; init; }
    public IReadOnlyList<int> Learners { get; init; } = Array.Empty<int>();
    public long Term { get; init; }
    public long CommitIndex { get; init; }
    public long KeyCount { get; init; }
}
