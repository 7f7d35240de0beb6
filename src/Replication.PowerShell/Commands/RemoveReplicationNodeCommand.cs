using System.Management.Automation;
using Replication.Engine;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Removes a node from a cluster: it is marked leaving, the ring moves its replicas to the other nodes (each move adds
/// the new replica before the old one goes, so no shard drops below quorum), then it is deregistered and stops by
/// itself (an embedded node's folder is deleted; a node process's -Wait returns and its folder stays for the operator).
/// Refused with ReplicationFactorAtRisk when the other nodes could not hold ReplicationFactor replicas of every shard,
/// unless -Force. Waits with progress until done, or returns at once with -NoWait.
/// </summary>
/// <example>
/// <code>Remove-ReplicationNode -Id 4 -Confirm:$false</code>
/// Drains node 4 and removes it once its replicas live elsewhere.
/// </example>
/// <example>
/// <code>Get-ReplicationNode | Where-Object State -eq Unreachable | Remove-ReplicationNode -Force -Confirm:$false</code>
/// Removes nodes that are gone for good; their shards get new replicas from the live ones.
/// </example>
/// <seealso cref="AddReplicationNodeCommand"/>
/// <seealso cref="GetReplicationRingCommand"/>
[Cmdlet(VerbsCommon.Remove, "ReplicationNode", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(void))]
public sealed class RemoveReplicationNodeCommand : ClusterCmdlet
{
    /// <summary>The node to remove (binds the Id of a piped node).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(NodeIdCompleter))]
    public int Id { get; set; }

    /// <summary>Remove it even when the rest cannot hold ReplicationFactor replicas of every shard (they then keep fewer).</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Return once the node is marked leaving, without waiting for its replicas to move.</summary>
    [Parameter]
    public SwitchParameter NoWait { get; set; }

    /// <summary>Seconds to wait at most (a TimeSpan works too). Default 600 (10 minutes).</summary>
    [Parameter]
    [TimeoutSeconds]
    public double Timeout { get; set; } = 600;

    protected override void ProcessRecord()
    {
        ValidateTimeout(Timeout);
        var cluster = ResolveCluster();
        if (!ShouldProcess($"node {Id} of cluster '{cluster.Name}'", "Move its replicas away and remove it")) return;
        try
        {
            Await(cluster.Engine.RemoveNodeAsync(Id, Force, TimeoutSpan, StopToken));
            WriteVerbose($"node {Id} is leaving: its replicas move to the other nodes");
            if (NoWait) return;
            var pump = new ProgressPump(activityId: 8);
            var task = cluster.Engine.WaitForPlacementAsync(new MoveProgress(pump, $"Moving replicas off node {Id}"), TimeoutSpan, StopToken);
            pump.WaitPumping(task, this);
            Await(task);
        }
        catch (ClusterNotRunningException e) { ThrowEngineError(e, cluster); }
        catch (ReplicationException e) { WriteEngineError(e, Id); }
    }
}
