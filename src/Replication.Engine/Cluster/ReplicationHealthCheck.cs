namespace Replication;

/// <summary>One health check of a cluster (Test-ReplicationCluster): what was checked (<see cref="Check"/>), on what
/// (<see cref="Target"/>: "shard 0", "node 2", "cluster"), the verdict and a sentence saying what was found.</summary>
public sealed record ReplicationHealthCheck
{
    public string Cluster { get; init; } = "";
    public required string Check { get; init; }
    public required string Target { get; init; }
    public required HealthResult Result { get; init; }
    public required string Detail { get; init; }
}
