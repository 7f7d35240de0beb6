using System.Management.Automation;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Closes the connection to a remote cluster and forgets it in this session. The cluster itself keeps
/// running. An embedded cluster cannot be disconnected (ErrorId NotSupportedEmbedded): use
/// Remove-ReplicationCluster to stop it.
/// </summary>
/// <example>
/// <code>Disconnect-ReplicationCluster</code>
/// Closes the connection to the current (remote) cluster; the cluster keeps running.
/// </example>
/// <example>
/// <code>Get-ReplicationCluster | Where-Object Mode -EQ 'Remote' | Disconnect-ReplicationCluster</code>
/// Disconnects every remote cluster of this session and leaves embedded clusters alone.
/// </example>
[Cmdlet(VerbsCommunications.Disconnect, "ReplicationCluster", DefaultParameterSetName = DefaultSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(void))]
public sealed class DisconnectReplicationClusterCommand : ReplicationCmdlet
{
    public const string DefaultSet = "Default";

    /// <summary>A ReplicationCluster (from the pipeline) or a name; default: the current cluster. Also -Name: the cluster was
    /// created or connected with -Name, and that is what an operator types back.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = DefaultSet)]
    [Alias("Name")]
    [ArgumentCompleter(typeof(ClusterNameCompleter))]
    public object? Cluster { get; set; }

    protected override void ProcessRecord()
    {
        var cluster = ResolveCluster(Cluster);
        if (cluster.Mode != ClusterMode.Remote)
        {
            WriteError(NewErrorRecord(ErrorIds.NotSupportedEmbedded, ErrorCategory.InvalidOperation,
                $"Cluster '{cluster.Name}' runs in this process; there is no connection to close. Remove-ReplicationCluster stops it.", cluster));
            return;
        }
        if (!ShouldProcess($"cluster '{cluster.Name}'", "Close the connection and forget the cluster in this session (the cluster keeps running)")) return;
        Await(cluster.Engine.DisposeAsync().AsTask());
        ClusterRegistry.Unregister(cluster);
    }
}
