using System.Management.Automation;
using Replication.Engine;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Shows and carries out the ring's plan: every replica move between the shards' current memberships and the ring's
/// placement, as ReplicationMove objects (shard, from, to, next Raft step, reason). The cluster makes these moves by
/// itself, a bounded number of shards at a time; this cmdlet writes the plan and waits (with progress) until it is done
/// and every shard has its replicas and a leader. -WhatIf writes the plan only.
/// </summary>
/// <example>
/// <code>Invoke-ReplicationRebalance -WhatIf</code>
/// Lists the moves the ring still wants, without waiting for them.
/// </example>
/// <example>
/// <code>Invoke-ReplicationRebalance -Timeout 300 | Group-Object Reason</code>
/// Waits up to five minutes for the moves and summarizes why replicas moved.
/// </example>
/// <seealso cref="GetReplicationRingCommand"/>
/// <seealso cref="MoveReplicationShardCommand"/>
[Cmdlet(VerbsLifecycle.Invoke, "ReplicationRebalance", SupportsShouldProcess = true)]
[OutputType(typeof(ReplicationMove))]
public sealed class InvokeReplicationRebalanceCommand : ClusterCmdlet
{
    /// <summary>Seconds to wait at most (a TimeSpan works too). Default 600 (10 minutes).</summary>
    [Parameter]
    [TimeoutSeconds]
    public double Timeout { get; set; } = 600;

    protected override void ProcessRecord()
    {
        ValidateTimeout(Timeout);
        var cluster = ResolveCluster();
        try
        {
            var moves = Await(cluster.Engine.GetMovesAsync(StopToken));
            foreach (var move in moves) WriteObject(move with { Cluster = cluster.Name });
            if (!ShouldProcess($"cluster '{cluster.Name}'", $"Wait for {moves.Count} replica move(s)")) return;
            var pump = new ProgressPump(activityId: 10);
            var task = cluster.Engine.WaitForPlacementAsync(new MoveProgress(pump, "Rebalancing"), TimeoutSpan, StopToken);
            pump.WaitPumping(task, this);
            Await(task);
        }
        catch (ClusterNotRunningException e) { ThrowEngineError(e, cluster); }
        catch (ReplicationException e) { ThrowEngineError(e, cluster.Name); }
    }
}
