using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Starts stopped nodes of an embedded cluster from their data folders; each catches up from its
/// shards' leaders in the background (watch AppliedIndex with Get-ReplicationNode). Writes each
/// node's status after the start.
/// </summary>
[Cmdlet(VerbsLifecycle.Start, "ReplicationNode", DefaultParameterSetName = EmbeddedSet)]
[OutputType(typeof(ReplicationNode))]
public sealed class StartReplicationNodeCommand : ClusterCmdlet
{
    /// <summary>Restart a node of an embedded cluster of this process.</summary>
    public const string EmbeddedSet = "Embedded";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = EmbeddedSet)]
    public int[] Id { get; set; } = Array.Empty<int>();

    protected override void ProcessRecord()
    {
        var cluster = ResolveCluster();
        foreach (var id in Id)
        {
            try
            {
                Await(cluster.Engine.StartNodeAsync(id, StopToken));
                WriteObject(cluster.Engine.GetNode(id));
            }
            catch (ClusterNotRunningException e) { ThrowEngineError(e, cluster); }
            catch (ReplicationException e) { WriteEngineError(e, id); }
        }
    }
}
