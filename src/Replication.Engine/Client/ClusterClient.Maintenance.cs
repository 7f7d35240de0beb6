using System.Diagnostics;
using Replication.Engine.Cluster;

namespace Replication.Engine.Client;

/// <summary>Maintenance of a node over the administrative protocol (Cluster/ClusterNode.Maintenance.cs).</summary>
public partial class ClusterClient
{
    private static readonly TimeSpan DrainPoll = TimeSpan.FromMilliseconds(50);

    public async Task<ReplicationNode> SetNodeSuspendedAsync(int id, bool suspended, bool drain, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        if (!GetNodes().Any(n => n.Id == id)) throw new NodeNotFoundException(id) { Target = id };
        var watch = Stopwatch.StartNew();
        await AdminAsync<Empty>(AdminOps.NodeSuspend, 0, new SuspendArgs(id, suspended, (long)timeout.TotalMilliseconds), timeout, cancellationToken).ConfigureAwait(false);
        if (suspended && drain)
        {
            while (GetShards().Where(s => s.Leader == id).Select(s => s.Id).ToArray() is { Length: > 0 } led)
            {
                if (watch.Elapsed >= timeout)
                    throw new RemoteOperationException(ClusterNode.DrainTimeout, ReplicationErrorKind.Timeout,
                        $"Node {id} is suspended but still leads shard(s) {string.Join(",", led)} after {timeout.TotalSeconds:0.###} s (no other running voter, or transfers did not complete).") { Target = id };
                await Task.Delay(DrainPoll, cancellationToken).ConfigureAwait(false);
            }
        }
        var deadline = watch.Elapsed + TimeSpan.FromSeconds(5);
        // The node's status shows the mark once the contacted node's metadata replica has it.
        while (GetNode(id) is var node && node.Suspended != suspended && watch.Elapsed < deadline)
            await Task.Delay(DrainPoll, cancellationToken).ConfigureAwait(false);
        return GetNode(id);
    }
}
