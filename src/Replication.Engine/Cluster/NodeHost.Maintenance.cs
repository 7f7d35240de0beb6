namespace Replication.Engine.Cluster;

/// <summary>Maintenance (Suspend-ReplicationNode; ClusterNode.Maintenance.cs): the cores of a suspended node start no campaign.</summary>
internal sealed partial class NodeHost
{
    /// <summary>Sets every hosted core's <see cref="Raft.RaftNode.Suspended"/>. Groups added later start unsuspended: the
    /// caller applies it again while the node is suspended.</summary>
    public Task<bool> SetSuspendedAsync(bool suspended) => RunOnLoopAsync(() =>
    {
        foreach (var g in _groups.Values) g.Core.Suspended = suspended;
        return true;
    });
}
