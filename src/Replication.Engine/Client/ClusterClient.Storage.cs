using Replication.Engine.Cluster;

namespace Replication.Engine.Client;

public partial class ClusterClient
{
    public async Task<IReadOnlyList<(int Node, IReadOnlyList<StoreCheck>? Stores, string Reason)>> CheckStorageAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        var checks = GetNodes().OrderBy(n => n.Id).Select(async n =>
        {
            // Unreachable nodes are asked too: a node whose damaged store fails its status reports may still answer this.
            if (n.State == NodeState.Stopped) return (n.Id, (IReadOnlyList<StoreCheck>?)null, $"not checked: the node is {n.State}" + (n.StateReason is { } why ? $" ({why})" : ""));
            try
            {
                var (stores, _) = await AdminAsync<StoreCheck[]>(AdminOps.StorageCheck, n.Id, new Empty(), timeout, cancellationToken).ConfigureAwait(false);
                return (n.Id, stores, "");
            }
            catch (ReplicationException e) when (e is not ClusterNotRunningException)
            {
                return (n.Id, null, $"not checked: {e.Message}");
            }
        }).ToArray();
        return await Task.WhenAll(checks).ConfigureAwait(false);
    }
}
