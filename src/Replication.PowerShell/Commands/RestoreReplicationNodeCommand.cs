using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Rebuilds a node: from its peers, or from its own cold backup (-Path). Done by membership change, never by putting
/// files back under a live member: the node is taken out of every group it belongs to, its data is dropped (or
/// replaced by the backup's), and it comes back as a learner that catches up and is promoted, so no term or vote goes
/// back in time and nothing acknowledged is lost. Refused (QuorumAtRisk) when a shard would lose its running quorum
/// without the node. Returns the node once it is a voter of its shards again (or at once with -NoWait).
/// </summary>
/// <example>
/// <code>Restore-ReplicationNode -Id 2 -Confirm:$false</code>
/// Rebuilds node 2 from its peers (for instance after its disk was replaced or its files were damaged) and waits until it is a voter of its shards again.
/// </example>
/// <example>
/// <code>
/// Backup-ReplicationNode -Id 2 -Path ./backups/n2 -Cold -Confirm:$false
/// Restore-ReplicationNode -Id 2 -Path ./backups/n2 -Confirm:$false
/// </code>
/// Restores node 2 from its own cold backup: the backup is verified, sent to the node, and the node then catches up from its peers beyond it.
/// </example>
[Cmdlet(VerbsData.Restore, "ReplicationNode", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(ReplicationNode))]
public sealed class RestoreReplicationNodeCommand : ClusterCmdlet
{
    /// <summary>The node to rebuild (binds the Id of a piped node).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(NodeIdCompleter))]
    public int Id { get; set; }

    /// <summary>A cold backup of that node (Backup-ReplicationNode -Cold) to restore from; without it the node is rebuilt from its peers.</summary>
    [Parameter(Position = 1)]
    [ValidateNotNullOrEmpty]
    public string? Path { get; set; }

    /// <summary>Return once the node is marked for rebuild, without waiting for it to rejoin.</summary>
    [Parameter]
    public SwitchParameter NoWait { get; set; }

    /// <summary>Seconds to wait for the rebuild at most (a TimeSpan works too). Default 600 (10 minutes).</summary>
    [Parameter]
    [TimeoutSeconds]
    public double Timeout { get; set; } = 600;

    protected override void ProcessRecord()
    {
        ValidateTimeout(Timeout);
        var cluster = ResolveCluster();
        string? backup = Path is null ? null : SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
        if (!ShouldProcess($"node {Id} of cluster '{cluster.Name}'" + (backup is null ? " from its peers" : $" from {backup}"), "Drop the node's data and rebuild it")) return;
        try
        {
            var pump = new ProgressPump(activityId: 4);
            var task = cluster.Engine.RestoreNodeAsync(Id, backup, NoWait, pump, TimeoutSpan, StopToken);
            pump.WaitPumping(task, this);
            var result = Await(task);
            if (result.Completed) WriteVerbose(result.Message);
            else WriteWarning(result.Message);
            WriteObject(cluster.Engine.GetNode(Id));
        }
        catch (ClusterNotRunningException e) { ThrowEngineError(e, cluster); }
        catch (ReplicationException e) { WriteEngineError(e, e is BackupCorruptException c ? c.File : Id); }
    }
}
