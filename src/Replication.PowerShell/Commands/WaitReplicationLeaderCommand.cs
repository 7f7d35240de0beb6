using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Blocks until a shard (or every shard) has a leader and returns the shards. After -Timeout seconds
/// (default 30) it fails with a terminating QuorumUnavailable error: a runbook cannot go on
/// without leaders.
/// </summary>
/// <example>
/// <code>
/// New-ReplicationCluster -Name demo
/// Wait-ReplicationLeader
/// </code>
/// Waits until every shard of the new cluster has elected a leader, and returns the shards.
/// </example>
/// <example>
/// <code>Wait-ReplicationLeader -Shard 2 -Timeout 5</code>
/// Waits up to 5 seconds for shard 2 to have a leader (-Timeout counts seconds, as Wait-Job does).
/// </example>
/// <seealso cref="GetReplicationShardCommand"/>
/// <seealso cref="NewReplicationClusterCommand"/>
[Cmdlet(VerbsLifecycle.Wait, "ReplicationLeader", DefaultParameterSetName = DefaultSet)]
[OutputType(typeof(ReplicationShard))]
public sealed class WaitReplicationLeaderCommand : ClusterCmdlet
{
    public const string DefaultSet = "Default";

    /// <summary>Shard id; default: every shard.</summary>
    [Parameter(Position = 0, ParameterSetName = DefaultSet)]
    [ValidateRange(0, int.MaxValue)]
    [ArgumentCompleter(typeof(ShardIdCompleter))]
    public int? Shard { get; set; }

    /// <summary>Seconds to wait for the leaders (a TimeSpan works too). Default 30; then a terminating QuorumUnavailable error.</summary>
    [Parameter(ParameterSetName = DefaultSet)]
    [TimeoutSeconds]
    public double Timeout { get; set; } = 30;

    protected override void ProcessRecord()
    {
        ValidateTimeout(Timeout);
        var cluster = ResolveCluster();
        try
        {
            WriteVerbose($"Waiting up to {Timeout:0.###} s for {(Shard is int one ? $"shard {one}" : "every shard")} of cluster '{cluster.Name}' to have a leader.");
            var shards = Await(cluster.Engine.WaitForLeadersAsync(Shard, TimeoutSpan, StopToken));
            WriteVerbose("Leaders: " + string.Join(", ", shards.Select(s => $"shard {s.Id} -> node {s.Leader} (term {s.Term})")) + ".");
            WriteObject(shards, enumerateCollection: true);
        }
        catch (ReplicationException e)
        {
            ThrowEngineError(e, Shard is int s ? s : cluster);
        }
    }
}
