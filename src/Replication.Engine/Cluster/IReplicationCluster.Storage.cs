namespace Replication.Engine.Cluster;

/// <summary>The on-demand storage check (Test-ReplicationCluster -Storage; ClusterNode.StorageCheck.cs).</summary>
public partial interface IReplicationCluster
{
    /// <summary>
    /// Has every node not known stopped run SQLite's quick_check over its stores (raft.db, state.db), reading every page: the cost of
    /// reading them once. Returns, per node, its stores' results, or null with the reason when the node was not checked (not
    /// running, or no answer within <paramref name="timeout"/>). A store that fails is also recorded as a StorageCorrupt event.
    /// </summary>
    Task<IReadOnlyList<(int Node, IReadOnlyList<StoreCheck>? Stores, string Reason)>> CheckStorageAsync(TimeSpan timeout, CancellationToken cancellationToken);
}
