namespace Replication;

/// <summary>
/// One shard in a backup: the Raft index and term its data reflects (every entry up to
/// <see cref="Index"/> applied, nothing after), its key count, and the file holding it with that
/// file's size and SHA-256 (a cold backup's shards share the node's state.db).
/// </summary>
public sealed record BackupShard
{
    public required int Shard { get; init; }
    public required long Index { get; init; }
    public required long Term { get; init; }
    public required long KeyCount { get; init; }
    public required string File { get; init; }
    public required long Bytes { get; init; }
    public required string Sha256 { get; init; }
    /// <summary>Node the shard was copied from (the leader for a hot backup).</summary>
    public int Node { get; init; }
}
