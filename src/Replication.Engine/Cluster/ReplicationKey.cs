namespace Replication;

/// <summary>A key as stored. <see cref="Version"/> starts at 1 and grows by one per put;
/// <see cref="Index"/> is the Raft log index of the write that produced this version. A write acknowledged
/// with <see cref="WriteConcern.Leader"/> comes back before it is applied: Version 0 (not known yet).</summary>
public sealed record ReplicationKey(string Key, string Value, long Version, int Shard, long Index)
{
    /// <summary>The cluster this key was read from (set by the cluster, for display and piping).</summary>
    public string? Cluster { get; init; }
}
