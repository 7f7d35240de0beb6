using System.Management.Automation;
using Replication.Engine;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Planned switchover: moves a shard's leadership to another voter by Raft leader transfer. The target (-TargetNode,
/// or else the running, not suspended voter whose log is furthest along) is brought level with the leader's log
/// first, then takes over at once. Nothing acknowledged is lost, and writes issued meanwhile wait for the new leader
/// rather than fail. Writes one ReplicationFailover per shard (Kind Planned, LostEntries 0) and records a Switchover
/// event. When the target already leads, nothing moves.
/// <para>
/// With -AllowDataLoss (the SQL Server convention), a forced recovery for a shard whose majority of voters is gone for
/// good: the replica with the longest log among the nodes that answer becomes the shard's only voter, leads, and the
/// shard grows back to its replication factor on the nodes that run once the lost nodes are removed
/// (Remove-ReplicationNode -Force; Add-ReplicationNode first where too few nodes remain). What the lost majority
/// acknowledged after the survivor's last entry is gone (after index SurvivorLastIndex, or in a term after
/// SurvivorLastTerm); LostEntries is empty (unknown). Refused with QuorumAvailable while a majority of the shard's voters answers. Records a
/// ForcedRecovery event. ConfirmImpact High for this parameter set: it prompts unless -Confirm:$false is given (or
/// $ConfirmPreference is None); a planned switchover is Medium.
/// </para>
/// </summary>
/// <example>
/// <code>Invoke-ReplicationFailover -Shard 0</code>
/// Moves the leadership of shard 0 to its best caught-up voter and shows the old and new leader and how long it took.
/// </example>
/// <example>
/// <code>Invoke-ReplicationFailover -Shard 1 -TargetNode 3</code>
/// Moves the leadership of shard 1 to node 3 (a running voter of shard 1).
/// </example>
/// <example>
/// <code>Get-ReplicationShard | Where-Object Leader -EQ 1 | Invoke-ReplicationFailover</code>
/// Moves every leadership node 1 holds to other voters, for example before maintenance of node 1.
/// </example>
/// <example>
/// <code>$cluster = New-ReplicationCluster -Name forced -NodeCount 5 -ShardCount 1
/// Invoke-ReplicationRebalance | Out-Null
/// Set-ReplicationKey -Key 'survives' -Value 'yes'
/// $lost = (Get-ReplicationShard -Id 0).Voters | Where-Object { $_ -ne 1 } | Select-Object -First 2
/// Stop-ReplicationNode -Id $lost -Kill -Confirm:$false | Out-Null
/// Invoke-ReplicationFailover -Shard 0 -AllowDataLoss -Confirm:$false | Format-List Shard, NewLeader, Kind, SurvivorLastIndex, SurvivorLastTerm, LostEntries, Detail
/// Remove-ReplicationCluster -DeleteData -Confirm:$false</code>
/// In a new five-node cluster whose placement is carried out, kills two of shard 0's three voters (a majority), then makes the surviving replica with the longest log the shard's only
/// voter. The result says from which index on writes acknowledged by the lost voters are gone. A runbook would then remove
/// the lost nodes (Remove-ReplicationNode -Force), and the shard grows back to three voters on the live ones.
/// </example>
/// <example>
/// <code>Invoke-ReplicationFailover -Shard 0 -AllowDataLoss -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable refused
/// $refused.FullyQualifiedErrorId</code>
/// Shows the refusal while a quorum of shard 0's voters answers: QuorumAvailable, and nothing is forced.
/// </example>
/// <seealso cref="GetReplicationShardCommand"/>
/// <seealso cref="GetReplicationEventCommand"/>
/// <seealso cref="WaitReplicationLeaderCommand"/>
[Cmdlet(VerbsLifecycle.Invoke, "ReplicationFailover", DefaultParameterSetName = PlannedSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(ReplicationFailover))]
public sealed class InvokeReplicationFailoverCommand : ClusterCmdlet
{
    public const string PlannedSet = "Planned";
    public const string ForcedSet = "Forced";

    /// <summary>
    /// Shard ids; binds the Id of piped shard objects (planned only). Default (planned only): every shard. A forced recovery
    /// names its shard: piped shards never bind there, so a pipeline cannot turn into data loss, and the planned set is the
    /// one piping selects (bug fixed: with the Id bound in both sets, PowerShell chose the forced one, whose mandatory
    /// pipeline parameter it had bound, and asked for -AllowDataLoss).
    /// </summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = PlannedSet)]
    [Parameter(Position = 0, ParameterSetName = ForcedSet, Mandatory = true)]
    [Alias("Id")]
    [ValidateRange(0, int.MaxValue)]
    [ArgumentCompleter(typeof(ShardIdCompleter))]
    public int[]? Shard { get; set; }

    /// <summary>The node to take over: a running voter of each shard. Default: the best caught-up voter.</summary>
    [Parameter(ParameterSetName = PlannedSet)]
    [ValidateRange(1, int.MaxValue)]
    [ArgumentCompleter(typeof(NodeIdCompleter))]
    public int? TargetNode { get; set; }

    /// <summary>Forced recovery after a permanent loss of quorum: accept losing what only the lost voters had.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ForcedSet)]
    public SwitchParameter AllowDataLoss { get; set; }

    /// <summary>Seconds each shard's switchover may take (a TimeSpan works too). Default 30.</summary>
    [Parameter]
    [TimeoutSeconds]
    public double Timeout { get; set; } = 30;

    protected override void ProcessRecord()
    {
        ValidateTimeout(Timeout);
        var cluster = ResolveCluster();
        int[] shards;
        try { shards = Shard is { Length: > 0 } ? Shard : cluster.Engine.GetShards().Select(s => s.Id).Order().ToArray(); }
        catch (ReplicationException e) { ThrowEngineError(e, cluster); return; }
        foreach (int shard in shards)
        {
            string target = $"shard {shard} of cluster '{cluster.Name}'";
            if (AllowDataLoss)
            {
                const string action = "Forced recovery: make the replica with the longest log the only voter, losing what only the lost voters had";
                if (!ShouldProcess(target, action) || !ConfirmHighImpact(target, action)) continue;
            }
            else if (!ShouldProcess(target, $"Move leadership to {(TargetNode is int t ? $"node {t}" : "its best caught-up voter")}")) continue;
            try
            {
                var result = Await(AllowDataLoss
                    ? cluster.Engine.ForceFailoverAsync(shard, TimeoutSpan, StopToken)
                    : cluster.Engine.FailoverAsync(shard, TargetNode, TimeoutSpan, StopToken));
                WriteVerbose(result.Detail);
                WriteObject(result);
            }
            catch (ClusterNotRunningException e) { ThrowEngineError(e, cluster); }
            catch (ReplicationException e) { WriteEngineError(e, shard); }
        }
    }

    /// <summary>
    /// ConfirmImpact High for the forced parameter set (PowerShell declares one impact per cmdlet, and the planned
    /// switchover is Medium): prompts as a High-impact cmdlet would — unless -Confirm was given either way (with
    /// -Confirm, ShouldProcess has just asked) or $ConfirmPreference is None.
    /// </summary>
    private bool ConfirmHighImpact(string target, string action)
    {
        if (MyInvocation.BoundParameters.ContainsKey("Confirm")) return true;
        if (SessionState.PSVariable.GetValue("ConfirmPreference") is ConfirmImpact.None) return true;
        return ShouldContinue($"{action} ({target})?", "Confirm forced recovery");
    }
}
