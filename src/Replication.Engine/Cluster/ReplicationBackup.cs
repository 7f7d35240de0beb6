namespace Replication;

/// <summary>
/// A backup on disk, as written by a backup or read back by verification. <see cref="Checksum"/> is
/// the SHA-256 over the manifest's canonical text (which includes every file's SHA-256), so it
/// identifies the backup's whole content. <see cref="Valid"/>: null = not verified (what a backup
/// returns), true = every check passed, false = see <see cref="Problem"/>.
/// </summary>
public sealed record ReplicationBackup
{
    public required string Path { get; init; }
    public required Guid ClusterId { get; init; }
    public required string ClusterName { get; init; }
    public required BackupKind Kind { get; init; }
    /// <summary>The node a cold backup was taken from; null for a hot backup.</summary>
    public int? NodeId { get; init; }
    public required IReadOnlyList<BackupShard> Shards { get; init; }
    public required int ShardCount { get; init; }
    public required int NodeCount { get; init; }
    public required int ReplicationFactor { get; init; }
    public long KeyCount => Shards.Sum(s => s.KeyCount);
    /// <summary>Bytes of every file of the backup (manifest excluded).</summary>
    public required long Bytes { get; init; }
    public required string Checksum { get; init; }
    public required DateTimeOffset Created { get; init; }
    /// <summary>Time the backup (or the verification) took.</summary>
    public TimeSpan Duration { get; init; }
    /// <summary>A hot backup's write pause: the longest any shard held new writes while the consistent cut was taken.</summary>
    public TimeSpan BarrierPause { get; init; }
    public bool? Valid { get; init; }
    public string? Problem { get; init; }
}
