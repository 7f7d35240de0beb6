using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Restores a backup into a NEW embedded cluster with a fresh cluster Id (-Name), or into a running cluster that
/// holds no keys yet (-Cluster; a remote one too). The backup may be hot, or a cold backup of a node that held every
/// shard. The backup is verified first: a bad backup is refused (BackupCorrupt, naming the file) before anything is
/// written. Keys keep their values and versions; they are written through Raft like any write (their Index is the
/// restore's), to the shards they hash to in the target. A new cluster becomes the session's current cluster, as
/// New-ReplicationCluster does; its shard count defaults to the backup's. ConfirmImpact is Low, as for
/// New-ReplicationCluster: it overwrites nothing (a new cluster needs a new or empty folder, and -Cluster an empty
/// cluster), so it does not prompt, the way Restore-DbaDatabase asks only before it overwrites. -WhatIf works.
/// </summary>
/// <example>
/// <code>Restore-ReplicationCluster -Path ./backups/b1 -Name copy -ClusterPath ./copy</code>
/// Verifies the backup, then creates and starts the new cluster copy in ./copy with the backup's keys.
/// </example>
/// <example>
/// <code>Test-ReplicationBackup ./backups/b1 | Restore-ReplicationCluster -Name staging -NodeCount 5</code>
/// Restores a verified backup into a new 5-node cluster named staging.
/// </example>
/// <example>
/// <code>
/// $prod = Connect-ReplicationCluster -Endpoint 10.0.0.11:7100 -ClusterSecret $secret
/// Restore-ReplicationCluster -Path ./backups/b1 -Cluster $prod
/// </code>
/// Loads a backup into a running, still empty cluster of node processes, from a shell that has only its endpoints.
/// </example>
/// <seealso cref="TestReplicationBackupCommand"/>
/// <seealso cref="BackupReplicationNodeCommand"/>
[Cmdlet(VerbsData.Restore, "ReplicationCluster", DefaultParameterSetName = DefaultSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(ReplicationCluster))]
public sealed class RestoreReplicationClusterCommand : ReplicationCmdlet
{
    public const string DefaultSet = "Default";
    public const string IntoSet = "Into";

    /// <summary>The backup folder (binds the Path of a piped ReplicationBackup).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = DefaultSet)]
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = IntoSet)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = string.Empty;

    /// <summary>A running cluster (object or name) that holds no keys yet, to load the backup into, instead of creating one.</summary>
    [Parameter(Mandatory = true, ParameterSetName = IntoSet)]
    [ArgumentCompleter(typeof(ClusterNameCompleter))]
    public object? Cluster { get; set; }

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

    /// <summary>Seconds the load may take at most (a TimeSpan works too). Default 600 (10 minutes).</summary>
    [Parameter]
    [TimeoutSeconds]
    public double Timeout { get; set; } = 600;

    protected override void ProcessRecord()
    {
        ValidateTimeout(Timeout);
        string backup = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
        if (ParameterSetName == IntoSet)
        {
            var into = ResolveCluster(Cluster);
            if (!ShouldProcess($"cluster '{into.Name}' from backup {backup}", "Load the backup's keys")) return;
            try
            {
                var pump = new ProgressPump(activityId: 3);
                var load = into.Engine.LoadBackupAsync(backup, pump, TimeoutSpan, StopToken);
                pump.WaitPumping(load, this);
                long keys = Await(load);
                WriteVerbose($"Loaded {keys} keys into '{into.Name}'.");
                WriteObject(into);
            }
            catch (ReplicationException e) { ThrowEngineError(e, e is BackupCorruptException c ? c.File : backup); }
            return;
        }
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
            var task = EmbeddedCluster.RestoreAsync(backup, options, pump, TimeoutSpan, StopToken);
            pump.WaitPumping(task, this);
            return Await(task);
        }, e => e is BackupCorruptException c ? c.File : backup);
        WriteObject(cluster);
    }
}
