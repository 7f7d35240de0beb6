using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Checks a cluster's health and writes one ReplicationHealthCheck per check and target, each Pass, Warning or Fail
/// with a sentence: NodeReachable (per node), Quorum and Leader (per shard; Quorum warns while a voter is down and
/// fails without a majority; Leader warns while an election runs and fails when none can), LeaderBalance, ReplicaLag, Disk and ClockOffset (per running node: lag in entries; a full
/// disk, the free space of the data volume against the data size, 1 GiB and 128 MiB; the node's wall clock against
/// this machine's, warning beyond 1 s), LeaderChurn (per shard: elections in the last 10 minutes, from the event history), StoreLayout (warns when nodes keep
/// their state in different layouts: a replica moved between them is copied row by row), and with -Storage,
/// Storage (per node: SQLite's quick_check of its stores, which reads every page). A runbook gates on
/// it: <c>if (Test-ReplicationCluster | Where-Object Result -EQ 'Fail') { ... }</c>. Use -Quiet for one Boolean
/// (True when nothing failed).
/// </summary>
/// <example>
/// <code>Test-ReplicationCluster</code>
/// Runs every check of the current cluster and shows each verdict with what was found.
/// </example>
/// <example>
/// <code>Test-ReplicationCluster | Where-Object Result -NE 'Pass'</code>
/// Shows only the checks that warn or fail.
/// </example>
/// <example>
/// <code>Test-ReplicationCluster -Storage | Where-Object Check -EQ 'Storage' | Format-Table Target, Result, Detail -Wrap</code>
/// Also has every running node check its stores page by page (SQLite's quick_check), and shows what each found and how long it took.
/// </example>
/// <example>
/// <code>if (-not (Test-ReplicationCluster -Quiet)) { Write-Warning 'The cluster is not healthy.' }</code>
/// Gates a runbook step on the cluster's health.
/// </example>
/// <seealso cref="GetReplicationNodeCommand"/>
/// <seealso cref="GetReplicationShardCommand"/>
/// <seealso cref="GetReplicationEventCommand"/>
/// <seealso cref="TestReplicationConsistencyCommand"/>
[Cmdlet(VerbsDiagnostic.Test, "ReplicationCluster")]
[OutputType(typeof(ReplicationHealthCheck), typeof(bool))]
public sealed class TestReplicationClusterCommand : ClusterCmdlet
{
    /// <summary>Also run the Storage check: every running node runs SQLite's quick_check over its raft.db and state.db, reading every
    /// page (about the time of reading the files once, so only on request; see README "Health checks"). Fail names the store and
    /// SQLite's finding, and the node records a StorageCorrupt event; a node not running is a Warning (not checked).</summary>
    [Parameter]
    public SwitchParameter Storage { get; set; }

    /// <summary>Write only True (no check failed) or False.</summary>
    [Parameter]
    public SwitchParameter Quiet { get; set; }

    /// <summary>Seconds each node may take to answer for its event history, and with -Storage for its stores' check (a TimeSpan works too). Default 10.</summary>
    [Parameter]
    [TimeoutSeconds]
    public double Timeout { get; set; } = 10;

    protected override void ProcessRecord()
    {
        ValidateTimeout(Timeout);
        var cluster = ResolveCluster();
        try
        {
            var checks = Await(HealthChecks.RunAsync(cluster.Engine, TimeoutSpan, StopToken, Storage));
            if (Quiet) WriteObject(!checks.Any(c => c.Result == HealthResult.Fail));
            else WriteObject(checks, enumerateCollection: true);
        }
        catch (ReplicationException e) { ThrowEngineError(e, cluster); }
    }
}
