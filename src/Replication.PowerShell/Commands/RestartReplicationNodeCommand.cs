using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// One step of a rolling restart: restarts a node of an embedded cluster without losing its shards' availability.
/// Refused (QuorumAtRisk, nothing done) when stopping the node would leave a shard it votes in without a running
/// quorum (the message names the stopped voters; a group still forming, right after Add-ReplicationNode, is waited for
/// within -Timeout). Otherwise the node hands its leaderships away and stops campaigning (Suspend-ReplicationNode -Drain), stops
/// cleanly, starts again from its data folder, waits until it has applied everything its shards committed meanwhile,
/// and is resumed (a node that was suspended before stays suspended). Writes the node afterwards. If a step fails, the node is left as that step left it (suspended:
/// Resume-ReplicationNode clears the mark). A node process (Start-ReplicationNode -Path -Listen) is restarted by whoever
/// runs it: NotSupportedRemotely here.
/// </summary>
/// <example>
/// <code>Restart-ReplicationNode -Id 2</code>
/// Restarts node 2 of the current embedded cluster; its shards keep a leader throughout and it comes back caught up.
/// </example>
/// <example>
/// <code>Get-ReplicationNode | Restart-ReplicationNode -Timeout 120 | Select-Object Id, State, Suspended, LagEntries</code>
/// A rolling restart: every node in turn, each one back and caught up before the next one stops.
/// </example>
/// <seealso cref="SuspendReplicationNodeCommand"/>
/// <seealso cref="StopReplicationNodeCommand"/>
/// <seealso cref="StartReplicationNodeCommand"/>
/// <seealso cref="TestReplicationClusterCommand"/>
[Cmdlet(VerbsLifecycle.Restart, "ReplicationNode", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(ReplicationNode))]
public sealed class RestartReplicationNodeCommand : ClusterCmdlet
{
    /// <summary>Ids of the nodes to restart, one after the other; binds the Id of piped node objects.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, int.MaxValue)]
    [ArgumentCompleter(typeof(NodeIdCompleter))]
    public int[] Id { get; set; } = [];

    /// <summary>Seconds for each node's whole restart: drain, stop, start and catch-up (a TimeSpan works too). Default 120.</summary>
    [Parameter]
    [TimeoutSeconds]
    public double Timeout { get; set; } = 120;

    protected override void ProcessRecord()
    {
        ValidateTimeout(Timeout);
        var cluster = ResolveCluster();
        if (cluster.Engine is not EmbeddedCluster embedded)
        {
            WriteError(NewErrorRecord(ErrorIds.NotSupportedRemotely, ErrorCategory.InvalidOperation,
                $"Cluster '{cluster.Name}' runs its nodes in other processes: restart a node where it runs. Suspend-ReplicationNode -Id <id> -Drain, " +
                "stop its process (Ctrl+C or SIGTERM stops it cleanly), start it again with Start-ReplicationNode -Path <its folder> -Listen <its address> " +
                "in its own process, wait until Get-ReplicationNode shows it Running with LagEntries 0, then Resume-ReplicationNode -Id <id>.", cluster));
            return;
        }
        foreach (int id in Id)
        {
            if (!ShouldProcess($"node {id} of cluster '{cluster.Name}'", "Drain, stop, start, catch up and resume")) continue;
            try { WriteObject(Await(embedded.RestartNodeAsync(id, TimeoutSpan, StopToken))); }
            catch (ClusterNotRunningException e) { ThrowEngineError(e, cluster); }
            catch (ReplicationException e) { WriteEngineError(e, id); }
        }
    }
}
