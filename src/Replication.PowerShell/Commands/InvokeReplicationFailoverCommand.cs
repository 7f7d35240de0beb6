using System.Management.Automation;
using Replication.Engine;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Planned switchover: moves a shard's leadership to another voter by Raft leader transfer. The target (-TargetNode,
/// or else the running, not suspended voter whose log is furthest along) is brought level with the leader's log
/// first, then takes over at once. Nothing acknowledged is lost, and writes issued meanwhile wait for the new leader
/// rather than fail. Writes one ReplicationFailover per shard (Kind Planned, LostEntries 0) and records a Switchover
/// event. When the target already leads, nothing moves.
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
/// <seealso cref="GetReplicationShardCommand"/>
/// <seealso cref="GetReplicationEventCommand"/>
/// <seealso cref="WaitReplicationLeaderCommand"/>
[Cmdlet(VerbsLifecycle.Invoke, "ReplicationFailover", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(ReplicationFailover))]
public sealed class InvokeReplicationFailoverCommand : ClusterCmdlet
{
    /// <summary>Shard ids; binds the Id of piped shard objects. Default: every shard.</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("Id")]
    [ValidateRange(0, int.MaxValue)]
    [ArgumentCompleter(typeof(ShardIdCompleter))]
    public int[]? Shard { get; set; }

    /// <summary>The node to take over: a running voter of each shard. Default: the best caught-up voter.</summary>
    [Parameter]
    [ValidateRange(1, int.MaxValue)]
    [ArgumentCompleter(typeof(NodeIdCompleter))]
    public int? TargetNode { get; set; }

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
            string to = TargetNode is int t ? $"node {t}" : "its best caught-up voter";
            if (!ShouldProcess($"shard {shard} of cluster '{cluster.Name}'", $"Move leadership to {to}")) continue;
            try
            {
                var result = Await(cluster.Engine.FailoverAsync(shard, TargetNode, TimeoutSpan, StopToken));
                WriteVerbose(result.Detail);
                WriteObject(result);
            }
            catch (ClusterNotRunningException e) { ThrowEngineError(e, cluster); }
            catch (ReplicationException e) { WriteEngineError(e, shard); }
        }
    }
}
