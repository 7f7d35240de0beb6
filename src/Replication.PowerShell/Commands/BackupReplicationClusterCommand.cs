using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Backs up every shard of a cluster into a folder while the cluster keeps taking writes (a hot
/// backup). Each shard is copied from its
/// leader at a committed index (confirmed by a linearizable read) in one read transaction, into
/// shard-NNNN.db files plus backup.json (cluster id, per-shard index, term, key count, SHA-256).
/// -Path must be a new or empty folder. Shows progress per shard.
/// </summary>
/// <example>
/// <code>Backup-ReplicationCluster -Path ./backups/b1</code>
/// Writes a hot backup of the current cluster to ./backups/b1 while writes go on.
/// </example>
/// <example>
/// <code>Backup-ReplicationCluster -Path ./backups/nightly | Test-ReplicationBackup</code>
/// Backs up the cluster and verifies the backup it just wrote.
/// </example>
/// <seealso cref="TestReplicationBackupCommand"/>
/// <seealso cref="RestoreReplicationClusterCommand"/>
[Cmdlet(VerbsData.Backup, "ReplicationCluster", DefaultParameterSetName = DefaultSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(ReplicationBackup))]
public sealed class BackupReplicationClusterCommand : ClusterCmdlet
{
    public const string DefaultSet = "Default";

    /// <summary>Folder to write the backup into: new, or empty. Relative to the current location.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = DefaultSet)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = string.Empty;

    /// <summary>Seconds each shard may wait for a leader to confirm a read (a TimeSpan works too). Default 30; then QuorumUnavailable.</summary>
    [Parameter(ParameterSetName = DefaultSet)]
    [TimeoutSeconds]
    public double Timeout { get; set; } = 30;

    protected override void EndProcessing()
    {
        ValidateTimeout(Timeout);
        var cluster = ResolveCluster();
        string path = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
        if (!ShouldProcess($"cluster '{cluster.Name}' into {path}", "Hot backup of every shard")) return;
        try
        {
            var pump = new ProgressPump(activityId: 1);
            var task = cluster.Engine.BackupAsync(path, pump, TimeoutSpan, StopToken);
            pump.WaitPumping(task, this);
            WriteObject(Await(task));
        }
        catch (ReplicationException e)
        {
            ThrowEngineError(e, path);
        }
    }
}
