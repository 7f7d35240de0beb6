namespace Replication.Engine.Cluster;

/// <summary>
/// Identity and shape of a cluster (the <c>cluster</c> key of the metadata). <see cref="ShardCount"/> is the number of
/// shards it was created with (splits add more: the shard map is the truth); <see cref="Settings"/>: how the ring
/// splits, moves and balances (null in metadata written before it existed: the defaults).
/// </summary>
public sealed record ClusterInfo(Guid Id, string Name, int ShardCount, int ReplicationFactor, DateTimeOffset Created)
{
    public ClusterSettings? Settings { get; init; }

    /// <summary>The settings in force.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public ClusterSettings SettingsOrDefault => Settings ?? ClusterSettings.Default;
}
