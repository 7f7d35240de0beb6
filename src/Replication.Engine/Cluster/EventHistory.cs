namespace Replication.Engine.Cluster;

/// <summary>What <see cref="IReplicationCluster.GetEventsAsync"/> found: the merged events, oldest first, and the nodes
/// whose history could not be read (stopped, unreachable), each with why.</summary>
public sealed record EventHistory(IReadOnlyList<ReplicationEvent> Events, IReadOnlyList<(int Node, string Reason)> Unread);
