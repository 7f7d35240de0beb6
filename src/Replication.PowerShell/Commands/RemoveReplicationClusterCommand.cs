using System.Management.Automation;
using Replication.Engine;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Stops every node of a cluster and forgets it in this session (its name can be reused). The data
/// folder stays unless -DeleteData: New-ReplicationCluster -Path on it later reopens the same data.
/// Objects still holding the removed cluster get ClusterNotRunning from every cmdlet.
/// </summary>
/// <example>
/// <code>Remove-ReplicationCluster</code>
/// Stops every node of the current cluster after asking for confirmation; its data folder stays, so New-ReplicationCluster -Path can reopen it.
/// </example>
/// <example>
/// <code>Remove-ReplicationCluster -Cluster test -DeleteData -Confirm:$false</code>
/// Stops the cluster test and deletes its data folder without prompting, as a runbook would.
/// </example>
[Cmdlet(VerbsCommon.Remove, "ReplicationCluster", DefaultParameterSetName = DefaultSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(void))]
public sealed class RemoveReplicationClusterCommand : ReplicationCmdlet
{
    public const string DefaultSet = "Default";

    /// <summary>A ReplicationCluster (from the pipeline) or a name; default: the current cluster. Also -Name: the cluster was
    /// created or connected with -Name, and that is what an operator types back.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = DefaultSet)]
    [Alias("Name")]
    [ArgumentCompleter(typeof(ClusterNameCompleter))]
    public object? Cluster { get; set; }

    /// <summary>Also delete the data folder.</summary>
    [Parameter(ParameterSetName = DefaultSet)]
    public SwitchParameter DeleteData { get; set; }

    protected override void ProcessRecord()
    {
        var cluster = ResolveCluster(Cluster);
        if (cluster.Mode == ClusterMode.Remote)
        {
            // Decided: no silent disconnect, since a runbook would believe the nodes stopped.
            WriteError(NewErrorRecord(ErrorIds.NotSupportedRemotely, ErrorCategory.InvalidOperation,
                $"Cluster '{cluster.Name}' is remote: its nodes run elsewhere and are not stopped from here. Disconnect-ReplicationCluster closes the connection.", cluster));
            return;
        }
        var action = DeleteData ? $"Stop every node and DELETE the data folder {cluster.Path}" : "Stop every node (data is kept)";
        if (!ShouldProcess($"cluster '{cluster.Name}'", action)) return;
        try
        {
            Await(cluster.Engine.RemoveAsync(DeleteData));
        }
        catch (ReplicationException e)
        {
            ClusterRegistry.Unregister(cluster);
            WriteEngineError(e, cluster);
            return;
        }
        ClusterRegistry.Unregister(cluster);
    }
}
