using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Stops nodes of an embedded cluster, cleanly or (-Kill) abruptly as a crash would. Shards the node
/// led elect new leaders among the remaining voters. Writes each node's status after the stop.
/// </summary>
[Cmdlet(VerbsLifecycle.Stop, "ReplicationNode", DefaultParameterSetName = EmbeddedSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(ReplicationNode))]
public sealed class StopReplicationNodeCommand : ClusterCmdlet
{
    public const string EmbeddedSet = "Embedded";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = EmbeddedSet)]
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
                Await(cluster.Engine.StopNodeAsync(id, Kill, StopToken));
                WriteObject(cluster.Engine.GetNode(id));
            }
            catch (ClusterNotRunningException e) { ThrowEngineError(e, cluster); }
            catch (ReplicationException e) { WriteEngineError(e, id); }
        }
    }
}
