using System.Management.Automation;
using Replication.Engine;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Gets the cluster's event history: elections with their reason (the leader was lost, a check-quorum step-down, a
/// transfer, a pre-vote won), switchovers and forced recoveries, membership changes, nodes started, stopped and
/// unreachable, corrupt storage found, backups. Every node keeps its own bounded history beside its data (it survives
/// restarts); this reads every running node's and merges them by time, oldest first. A node whose history could not be
/// read (stopped, unreachable) is named in a warning, not an error.
/// </summary>
/// <example>
/// <code>Get-ReplicationEvent -Last 20</code>
/// Shows the 20 newest events of the cluster, from every running node, oldest first.
/// </example>
/// <example>
/// <code>Get-ReplicationEvent -Type LeaderElected, LeaderLost -Since (Get-Date).AddHours(-1)</code>
/// Lists the leadership changes of the last hour, each with the term and why it happened.
/// </example>
/// <example>
/// <code>Get-ReplicationEvent -Shard 0 -Node 1 | Format-List</code>
/// Shows what node 1 recorded about shard 0, one event per block with its full sentence.
/// </example>
/// <seealso cref="GetReplicationNodeCommand"/>
/// <seealso cref="GetReplicationShardCommand"/>
/// <seealso cref="ExportReplicationReportCommand"/>
[Cmdlet(VerbsCommon.Get, "ReplicationEvent")]
[OutputType(typeof(ReplicationEvent))]
public sealed class GetReplicationEventCommand : ClusterCmdlet
{
    /// <summary>Only events at or after this time (local time unless the value says otherwise).</summary>
    [Parameter]
    public DateTime? Since { get; set; }

    /// <summary>Only events of these types.</summary>
    [Parameter]
    public ReplicationEventType[]? Type { get; set; }

    /// <summary>Only events about these shards.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(0, int.MaxValue)]
    [ArgumentCompleter(typeof(ShardIdCompleter))]
    public int[]? Shard { get; set; }

    /// <summary>Only the history of these nodes (the node that recorded an event). An unknown id is NodeNotFound.</summary>
    [Parameter]
    [ValidateRange(1, int.MaxValue)]
    [ArgumentCompleter(typeof(NodeIdCompleter))]
    public int[]? Node { get; set; }

    /// <summary>Only the newest this many events (of those the other filters select), still oldest first.</summary>
    [Parameter]
    [ValidateRange(1, 1_000_000)]
    public int? Last { get; set; }

    /// <summary>Seconds each node may take to answer (a TimeSpan works too). Default 10.</summary>
    [Parameter]
    [TimeoutSeconds]
    public double Timeout { get; set; } = 10;

    protected override void ProcessRecord()
    {
        ValidateTimeout(Timeout);
        var cluster = ResolveCluster();
        DateTimeOffset? since = Since is DateTime t ? new DateTimeOffset(t.Kind == DateTimeKind.Unspecified ? DateTime.SpecifyKind(t, DateTimeKind.Local) : t) : null;
        try
        {
            var history = Await(cluster.Engine.GetEventsAsync(since, Type ?? [], Shard ?? [], Node ?? [], Last, TimeoutSpan, StopToken));
            foreach (var (node, reason) in history.Unread)
                WriteWarning($"The history of node {node} was not read: {reason}");
            WriteObject(history.Events, enumerateCollection: true);
        }
        catch (ReplicationException e)
        {
            ThrowEngineError(e, cluster);
        }
    }
}
