using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Checks that the running replicas of each shard hold the same data. It compares them at ONE
/// applied index by Merkle tree and writes one
/// ReplicationConsistency per shard: Consistent, or Divergent with the key ranges (and, for small
/// ranges, the exact keys) where a replica differs from the leader. A divergence is a result, not
/// an error (a warning is written too); errors are for shards that could not be compared.
/// </summary>
/// <example>
/// <code>Test-ReplicationConsistency</code>
/// Compares the replicas of every shard of the current cluster and writes Consistent or Divergent per shard.
/// </example>
/// <example>
/// <code>Test-ReplicationConsistency -Shard 0 | Select-Object -ExpandProperty DivergentRanges</code>
/// Checks shard 0 and lists the key ranges where a replica differs from the leader.
/// </example>
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
        var shards = Shard is { Length: > 0 } ? Shard : Enumerable.Range(0, cluster.ShardCount).ToArray();
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
            }
            catch (ClusterNotRunningException e) { ThrowEngineError(e, cluster); }
            catch (ReplicationException e) { WriteEngineError(e, s); }
        }
        WriteProgress(new ProgressRecord(4, "Test-ReplicationConsistency", "done") { RecordType = ProgressRecordType.Completed });
    }
}
