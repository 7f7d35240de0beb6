namespace Replication;

/// <summary>A key as stored. <see cref="Version"/> starts at 1 and grows by one per put;
/// <see cref="Index"/> is the Raft log index of the write that produced this version. A write acknowledged
/// with <see cref="WriteConcern.Leader"/> comes back before it is applied: Version 0 (not known yet).</summary>
public sealed record ReplicationKey(string Key, string Value, long Version, int Shard, long Index)
{
    /// <summary>The cluster this key was read from (set by the cluster, for display and piping).</summary>
    public string? Cluster { get; init; }

    /// <summary>For a <see cref="ReadConsistency.Stale"/> read: the node whose replica served it. Null for the other
    /// consistencies, which the shard's leader serves.</summary>
    public int? ReadFrom { get; init; }

    /// <summary>For a <see cref="ReadConsistency.Stale"/> read: how many committed entries of the shard that replica had
    /// not applied yet when it served the read (the best commit index it knew of, its own or from fresh peer reports,
    /// minus its applied index; a replica cut off from every peer may report less than it lags). Null otherwise.</summary>
    public long? LagEntries { get; init; }
}
