using System.Management.Automation;
using Replication.Engine;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Puts nodes in maintenance: each hands its leaderships to other running voters and stops campaigning, but still
/// votes and replicates, so its shards keep their quorum. The mark is kept in the cluster's replicated metadata
/// (the node's Suspended property) and survives restarts, until Resume-ReplicationNode. With -Drain, waits until the
/// node leads no shard (DrainTimeout otherwise). Writes each node afterwards.
/// </summary>
/// <example>
/// <code>Suspend-ReplicationNode -Id 2 -Drain</code>
/// Moves every leadership away from node 2 and waits until it leads nothing; it keeps replicating.
/// </example>
/// <example>
/// <code>Get-ReplicationNode -Id 3 | Suspend-ReplicationNode | Select-Object Id, Suspended, ShardsLed</code>
/// Suspends node 3 through the pipeline and shows its mark and how many shards it still leads.
/// </example>
/// <seealso cref="ResumeReplicationNodeCommand"/>
/// <seealso cref="InvokeReplicationFailoverCommand"/>
/// <seealso cref="GetReplicationNodeCommand"/>
[Cmdlet(VerbsLifecycle.Suspend, "ReplicationNode", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(ReplicationNode))]
public sealed class SuspendReplicationNodeCommand : ClusterCmdlet
{
    /// <summary>Ids of the nodes to suspend; binds the Id of piped node objects.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, int.MaxValue)]
    [ArgumentCompleter(typeof(NodeIdCompleter))]
    public int[] Id { get; set; } = [];

    /// <summary>Wait until the node leads no shard.</summary>
    [Parameter]
    public SwitchParameter Drain { get; set; }

    /// <summary>Seconds to record the mark and, with -Drain, to empty the node of leaderships (a TimeSpan works too). Default 30.</summary>
    [Parameter]
    [TimeoutSeconds]
    public double Timeout { get; set; } = 30;

    protected override void ProcessRecord()
    {
        ValidateTimeout(Timeout);
        var cluster = ResolveCluster();
        foreach (int id in Id)
        {
            if (!ShouldProcess($"node {id} of cluster '{cluster.Name}'", Drain ? "Suspend and drain leaderships" : "Suspend")) continue;
            try { WriteObject(Await(cluster.Engine.SetNodeSuspendedAsync(id, suspended: true, Drain, TimeoutSpan, StopToken))); }
            catch (ClusterNotRunningException e) { ThrowEngineError(e, cluster); }
            catch (ReplicationException e) { WriteEngineError(e, id); }
        }
    }
}
