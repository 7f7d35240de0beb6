namespace Replication;

/// <summary>
/// The comparison of one shard's replicas at ONE applied index (<see cref="AppliedIndex"/>): each
/// replica's Merkle root over the shard's ordered key space, with leaves cut at the same key
/// boundaries on every replica, and the key ranges where a replica differs from the leader.
/// Replicas that were not running are listed in <see cref="Unchecked"/>.
/// </summary>
public sealed record ReplicationConsistency
{
    public required string Cluster { get; init; }
    public required int Shard { get; init; }
    public required long AppliedIndex { get; init; }
    public bool Consistent => Status == ConsistencyStatus.Consistent;
    public required ConsistencyStatus Status { get; init; }
    public required IReadOnlyList<ReplicaDigest> Replicas { get; init; }
    /// <summary>Leaves of the tree (key ranges), the same on every replica.</summary>
    public required int Leaves { get; init; }
    public required IReadOnlyList<DivergentRange> DivergentRanges { get; init; }
    public IReadOnlyList<int> Unchecked { get; init; } = Array.Empty<int>();
    public TimeSpan Duration { get; init; }
}
