using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Checks that the running replicas of each shard hold the same data. It compares them at ONE
/// applied index by Merkle tree and writes one
/// ReplicationConsistency per shard: Consistent, or Divergent with the key ranges (and, for small
/// ranges, the exact keys) where a replica differs from the leader. A divergence is a result, not
/// an error (a warning is written too); errors are for shards that could not be compared: one non-terminating error
/// per such shard when others were checked, one terminating error when none could be (an unknown shard id is always
/// a non-terminating ShardNotFound).
/// </summary>
/// <example>
/// <code>Test-ReplicationConsistency</code>
/// Compares the replicas of every shard of the current cluster and writes Consistent or Divergent per shard.
/// </example>
/// <example>
/// <code>Test-ReplicationConsistency -Shard 0 | Select-Object -ExpandProperty DivergentRanges</code>
/// Checks shard 0 and lists the key ranges where a replica differs from the leader.
/// </example>
/// <seealso cref="GetReplicationShardCommand"/>
/// <seealso cref="GetReplicationNodeCommand"/>
[Cmdlet(VerbsDiagnostic.Test, "ReplicationConsistency", DefaultParameterSetName = DefaultSet)]
[OutputType(typeof(ReplicationConsistency))]
public sealed class TestReplicationConsistencyCommand : ClusterCmdlet
{
    public const string DefaultSet = "Default";

    /// <summary>Shard id(s); default: every shard.</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = DefaultSet)]
    [ValidateRange(0, int.MaxValue)]
    [ArgumentCompleter(typeof(ShardIdCompleter))]
    public int[]? Shard { get; set; }

    /// <summary>Seconds each shard may take to find a leader and have every replica reach the target index (a TimeSpan works too). Default 30.</summary>
    [Parameter(ParameterSetName = DefaultSet)]
    [TimeoutSeconds]
    public double Timeout { get; set; } = 30;

    protected override void ProcessRecord()
    {
        ValidateTimeout(Timeout);
        var cluster = ResolveCluster();
        // Every shard the cluster has now (ids are not 0..ShardCount-1 once shards split).
        int[] shards;
        try { shards = Shard is { Length: > 0 } ? Shard : cluster.Engine.GetShards().Select(x => x.Id).OrderBy(x => x).ToArray(); }
        catch (ReplicationException e) { ThrowEngineError(e, cluster); return; }
        // Per-shard failures of the cluster (no quorum, unreachable) are held back until the end: if NO shard could be
        // checked, the check as a whole failed, and that is one terminating error a try/catch sees (not one
        // non-terminating error per shard). A shard id that does not exist is an input error, reported at once.
        var failures = new List<(int Shard, ReplicationException Error)>();
        int checkedShards = 0;
        for (int i = 0; i < shards.Length; i++)
        {
            int s = shards[i];
            WriteProgress(new ProgressRecord(4, "Test-ReplicationConsistency", $"shard {s}: comparing replicas") { PercentComplete = i * 100 / shards.Length });
            try
            {
                foreach (var result in Await(cluster.Engine.CheckConsistencyAsync(s, TimeoutSpan, StopToken)))
                {
                    if (!result.Consistent)
                        WriteWarning($"Shard {result.Shard} is divergent at applied index {result.AppliedIndex}: {string.Join("; ", result.DivergentRanges)}");
                    WriteObject(result);
                }
                checkedShards++;
            }
            catch (ClusterNotRunningException e) { ThrowEngineError(e, cluster); }
            catch (NotSupportedRemotelyException e) { ThrowEngineError(e, cluster); }
            catch (ReplicationException e) when (e.Kind is ReplicationErrorKind.NotFound or ReplicationErrorKind.InvalidArgument)
            {
                WriteEngineError(e, s); // about this input (no such shard): per item, as Get-ReplicationShard -Id
            }
            catch (ReplicationException e)
            {
                WriteVerbose($"Shard {s} could not be checked: {e.Message}");
                failures.Add((s, e));
            }
        }
        if (failures.Count > 0 && checkedShards == 0)
        {
            var first = failures[0].Error;
            string message = $"No shard of cluster '{cluster.Name}' could be checked: " + string.Join("; ", failures.Select(f => $"shard {f.Shard}: {f.Error.Message}"));
            ThrowTerminatingError(new ErrorRecord(new InvalidOperationException(message, first), first.ErrorId, CategoryOf(first.Kind), cluster));
        }
        foreach (var (s, e) in failures) WriteEngineError(e, s);
        WriteProgress(new ProgressRecord(4, "Test-ReplicationConsistency", "done") { RecordType = ProgressRecordType.Completed });
    }
}
