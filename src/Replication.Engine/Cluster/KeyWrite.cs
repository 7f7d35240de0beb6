namespace Replication.Engine.Cluster;

/// <summary>
/// One write in a batch: a put (<see cref="Value"/> not null) or a delete (<see cref="Value"/> null).
/// <see cref="ExpectedVersion"/>: null = unconditional; 0 = the key must not exist;
/// n &gt; 0 = the key's current version must be n (compare-and-set).
/// <see cref="Version"/>: set the key to exactly this version instead of the next one (a put that loads a
/// backup into a cluster; Restore-ReplicationCluster); null for an ordinary write.
/// </summary>
public sealed record KeyWrite(string Key, string? Value, long? ExpectedVersion = null)
{
    public long? Version { get; init; }
    public bool IsDelete => Value is null;
}
