namespace Replication.Engine.Cluster;

/// <summary>Identity and shape of a multi-process cluster (the <c>cluster</c> key of the metadata).</summary>
public sealed record ClusterInfo(Guid Id, string Name, int ShardCount, int ReplicationFactor, DateTimeOffset Created);
