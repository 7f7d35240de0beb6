using System.Management.Automation;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Base of the cmdlets that act on one cluster. <c>-Cluster</c> takes a <see cref="ReplicationCluster"/>,
/// a cluster name, or any object whose <c>Cluster</c> property is one of those (the engine's node, shard
/// and key objects carry their cluster's name), so piping them routes to the right cluster. Without it,
/// the cluster most recently created or connected in this process is used.
/// </summary>
public abstract class ClusterCmdlet : ReplicationCmdlet
{
    /// <summary>A ReplicationCluster object or a cluster name. Default: the current cluster.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ClusterNameCompleter))]
    public object? Cluster { get; set; }

    /// <summary>Resolves <see cref="Cluster"/>; a terminating error (NoCluster, ClusterNotFound,
    /// InvalidClusterArgument) when it cannot.</summary>
    protected ReplicationCluster ResolveCluster() => ResolveCluster(Cluster);

}
