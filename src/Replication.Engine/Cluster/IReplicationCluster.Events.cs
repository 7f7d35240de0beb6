namespace Replication.Engine.Cluster;

/// <summary>The cluster's event history (see README, "Events"): every node keeps its own; this reads and merges them.</summary>
public partial interface IReplicationCluster
{
    /// <summary>
    /// Reads the event history of every running node (of <paramref name="nodes"/> only, when not empty), filtered on each
    /// node (at or after <paramref name="since"/>, of these <paramref name="types"/> and <paramref name="shards"/>; empty:
    /// all), merged by time; with <paramref name="last"/> only the newest that many. Nodes that are stopped or did not
    /// answer within <paramref name="timeout"/> are listed in <see cref="EventHistory.Unread"/>, not an error.
    /// </summary>
    Task<EventHistory> GetEventsAsync(DateTimeOffset? since, IReadOnlyList<ReplicationEventType> types, IReadOnlyList<int> shards,
        IReadOnlyList<int> nodes, int? last, TimeSpan timeout, CancellationToken cancellationToken);
}
