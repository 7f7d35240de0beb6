namespace Replication.Engine.Cluster;

/// <summary>
/// A cluster's identity, shape and state in one snapshot: what a remote client asks for to learn
/// whom it is talking to and which endpoints it may fail over to.
/// </summary>
public sealed record ClusterStatus(
    Guid Id,
    string Name,
    int ShardCount,
    int ReplicationFactor,
    IReadOnlyList<string> Endpoints,
    IReadOnlyList<ReplicationNode> Nodes,
    IReadOnlyList<ReplicationShard> Shards);
