using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Restores a backup into a NEW embedded cluster with a fresh cluster Id. The backup may be hot, or
/// a cold backup of a node that held every shard; the new cluster is started and becomes the
/// session's current cluster, as New-ReplicationCluster does. The backup is verified first: a bad backup is refused
/// (BackupCorrupt, naming the file) before anything is written. The restored cluster has the
/// backup's shard count; its keys keep their values and versions; its Raft log starts at index 1.
/// </summary>
/// <example>
/// <code>Restore-ReplicationCluster -Path ./backups/b1 -Name copy -ClusterPath ./copy</code>
/// Verifies the backup, then creates and starts the new cluster copy in ./copy with the backup's keys, after asking for confirmation.
/// </example>
/// <example>
/// <code>Test-ReplicationBackup ./backups/b1 | Restore-ReplicationCluster -Name staging -NodeCount 5 -Confirm:$false</code>
/// Restores a verified backup into a new 5-node cluster named staging without prompting.
/// </example>
[Cmdlet(VerbsData.Restore, "ReplicationCluster", DefaultParameterSetName = DefaultSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(ReplicationCluster))]
public sealed class RestoreReplicationClusterCommand : ReplicationCmdlet
{
    public const string DefaultSet = "Default";

    /// <summary>The backup folder (binds the Path of a piped ReplicationBackup).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = DefaultSet)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = string.Empty;

    /// <summary>Session-unique name of the new cluster.</summary>
    [Parameter(Mandatory = true, Position = 1, ParameterSetName = DefaultSet)]
    [ValidatePattern("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    public string Name { get; set; } = string.Empty;

    /// <summary>Data folder of the new cluster: new or empty. Default: &lt;temp&gt;/Replication/&lt;Name&gt;.</summary>
    [Parameter(ParameterSetName = DefaultSet)]
    [ValidateNotNullOrEmpty]
    public string? ClusterPath { get; set; }

    /// <summary>Nodes of the new cluster. Default: as many as the backed-up cluster had.</summary>
    [Parameter(ParameterSetName = DefaultSet)]
    [ValidateRange(1, ClusterOptions.MaxNodeCount)]
    public int NodeCount { get; set; }

    protected override void ProcessRecord()
    {
        string backup = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
        string target = ClusterFolder(Name, ClusterPath);
        if (!ShouldProcess($"new cluster '{Name}' in {target} from backup {backup}", "Restore")) return;
        var options = new ClusterOptions
        {
            Name = Name,
            Path = target,
            NodeCount = MyInvocation.BoundParameters.ContainsKey(nameof(NodeCount)) ? NodeCount : null,
        };
        var cluster = StartAndRegister(Name, () =>
        {
            var pump = new ProgressPump(activityId: 3);
            var task = EmbeddedCluster.RestoreAsync(backup, options, pump, StopToken);
            pump.WaitPumping(task, this);
            return Await(task);
        }, e => e is BackupCorruptException c ? c.File : backup);
        WriteObject(cluster);
    }
}
