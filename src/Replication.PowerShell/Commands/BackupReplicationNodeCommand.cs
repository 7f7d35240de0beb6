using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Backs up one node's files while the node is stopped (a cold backup). It stops the node cleanly, copies its raft.db and state.db with SQLite's backup
/// API into -Path (new or empty), and starts it again. Refused (QuorumAtRisk) when stopping the node
/// would leave one of its shards without a running quorum, so the cluster stays available.
/// ConfirmImpact High: it stops a node.
/// </summary>
/// <example>
/// <code>Backup-ReplicationNode -Id 2 -Path ./backups/n2 -Cold</code>
/// Stops node 2, copies its raft.db and state.db to ./backups/n2 and starts it again, after asking for confirmation.
/// </example>
/// <example>
/// <code>Get-ReplicationNode -Id 3 | Backup-ReplicationNode -Path ./backups/n3 -Cold -Confirm:$false</code>
/// Takes a cold backup of node 3 without prompting, as a runbook would.
/// </example>
/// <seealso cref="TestReplicationBackupCommand"/>
[Cmdlet(VerbsData.Backup, "ReplicationNode", DefaultParameterSetName = ColdSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(ReplicationBackup))]
public sealed class BackupReplicationNodeCommand : ClusterCmdlet
{
    public const string ColdSet = "Cold";

    /// <summary>Id of the node to back up (binds the Id of a piped node object).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = ColdSet)]
    [ArgumentCompleter(typeof(NodeIdCompleter))]
    public int Id { get; set; }

    /// <summary>Folder to write the backup into: new, or empty.</summary>
    [Parameter(Mandatory = true, Position = 1, ParameterSetName = ColdSet)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = string.Empty;

    /// <summary>Required: a node backup is a cold backup (the node is stopped for the copy). For an
    /// online backup of the data use Backup-ReplicationCluster.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ColdSet)]
    public SwitchParameter Cold { get; set; }

    protected override void ProcessRecord()
    {
        if (!Cold)
            ThrowTerminatingError(NewErrorRecord(ErrorIds.ColdRequired, ErrorCategory.InvalidArgument,
                "A node backup is always cold (the node stops for the copy): pass -Cold. For an online backup use Backup-ReplicationCluster.", Id));
        var cluster = ResolveCluster();
        string path = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
        if (!ShouldProcess($"node {Id} of cluster '{cluster.Name}' into {path}", "Hand the node's leaderships away and hold it while its files are copied (cold backup)")) return;
        try
        {
            var pump = new ProgressPump(activityId: 2);
            var task = cluster.Engine.BackupNodeColdAsync(Id, path, pump, TimeSpan.FromMinutes(10), StopToken);
            pump.WaitPumping(task, this);
            WriteObject(Await(task));
        }
        catch (ClusterNotRunningException e) { ThrowEngineError(e, cluster); }
        catch (ReplicationException e) { WriteEngineError(e, Id); }
    }
}
