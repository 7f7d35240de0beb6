using System.Management.Automation;
using Replication.Engine;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Ends the maintenance of nodes suspended with Suspend-ReplicationNode: each may campaign and lead again, and the
/// leader balancer may bring leaderships back to it. Writes each node afterwards.
/// </summary>
/// <example>
/// <code>Resume-ReplicationNode -Id 2</code>
/// Lets node 2 lead again after its maintenance.
/// </example>
/// <example>
/// <code>Get-ReplicationNode | Where-Object Suspended | Resume-ReplicationNode</code>
/// Resumes every suspended node of the current cluster.
/// </example>
/// <seealso cref="SuspendReplicationNodeCommand"/>
/// <seealso cref="GetReplicationNodeCommand"/>
[Cmdlet(VerbsLifecycle.Resume, "ReplicationNode", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(ReplicationNode))]
public sealed class ResumeReplicationNodeCommand : ClusterCmdlet
{
    /// <summary>Ids of the nodes to resume; binds the Id of piped node objects.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, int.MaxValue)]
    [ArgumentCompleter(typeof(NodeIdCompleter))]
    public int[] Id { get; set; } = [];

    /// <summary>Seconds to record the change in the cluster's metadata (a TimeSpan works too). Default 30.</summary>
    [Parameter]
    [TimeoutSeconds]
    public double Timeout { get; set; } = 30;

    protected override void ProcessRecord()
    {
        ValidateTimeout(Timeout);
        var cluster = ResolveCluster();
        foreach (int id in Id)
        {
            if (!ShouldProcess($"node {id} of cluster '{cluster.Name}'", "Resume")) continue;
            try { WriteObject(Await(cluster.Engine.SetNodeSuspendedAsync(id, suspended: false, drain: false, TimeoutSpan, StopToken))); }
            catch (ClusterNotRunningException e) { ThrowEngineError(e, cluster); }
            catch (ReplicationException e) { WriteEngineError(e, id); }
        }
    }
}
