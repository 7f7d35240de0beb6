using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Stops nodes of an embedded cluster, cleanly or (-Kill) abruptly as a crash would. Shards the node
/// led elect new leaders among the remaining voters. Writes each node's status after the stop.
/// </summary>
/// <example>
/// <code>Get-ReplicationNode -Id 2 | Stop-ReplicationNode -Kill</code>
/// Abandons node 2 at once, as a crash would; the shards it led elect new leaders.
/// </example>
/// <example>
/// <code>Stop-ReplicationNode -Id 3 -Confirm:$false</code>
/// Stops node 3 cleanly without prompting.
/// </example>
[Cmdlet(VerbsLifecycle.Stop, "ReplicationNode", DefaultParameterSetName = EmbeddedSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(ReplicationNode))]
public sealed class StopReplicationNodeCommand : ClusterCmdlet
{
    public const string EmbeddedSet = "Embedded";

    /// <summary>Ids of the nodes to stop; binds the Id of piped node objects.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = EmbeddedSet)]
    [ArgumentCompleter(typeof(NodeIdCompleter))]
    public int[] Id { get; set; } = Array.Empty<int>();

    /// <summary>Abandon the node at once: nothing more is persisted, connections drop.</summary>
    [Parameter(ParameterSetName = EmbeddedSet)]
    public SwitchParameter Kill { get; set; }

    protected override void ProcessRecord()
    {
        var cluster = ResolveCluster();
        foreach (var id in Id)
        {
            if (!ShouldProcess($"node {id} of cluster '{cluster.Name}'", Kill ? "Kill (abrupt stop, as a crash)" : "Stop")) continue;
            try
            {
                WriteVerbose($"{(Kill ? "Killing" : "Stopping")} node {id} of cluster '{cluster.Name}'.");
                WriteObject(Await(cluster.Engine.StopNodeAsync(id, Kill, StopToken)));
            }
            catch (ClusterNotRunningException e) { ThrowEngineError(e, cluster); }
            catch (ReplicationException e) { WriteEngineError(e, id); }
        }
    }
}
