using System.Management.Automation;
using Replication.Engine;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Splits shards in two at the middle of their hash range. A split is one entry in the shard's own Raft log, applied at
/// the same index on every replica: the new shard takes the right half with its keys on the same replicas (no data
/// crosses the network), and the ring may then move it. Writes and reads go on during the split; keys keep their
/// versions. Returns once both halves have a leader (past -Timeout, as they are), and writes both halves, the old shard
/// first. (The cluster also splits shards by itself past the SplitKeys setting of New-ReplicationCluster.)
/// </summary>
/// <example>
/// <code>Split-ReplicationShard -Id 0</code>
/// Splits shard 0; shows both halves with their hash ranges.
/// </example>
/// <example>
/// <code>Get-ReplicationShard | Sort-Object KeyCount -Descending | Select-Object -First 1 | Split-ReplicationShard</code>
/// Splits the shard holding the most keys.
/// </example>
/// <seealso cref="GetReplicationShardCommand"/>
/// <seealso cref="GetReplicationRingCommand"/>
[Cmdlet(VerbsCommon.Split, "ReplicationShard", SupportsShouldProcess = true)]
[OutputType(typeof(ReplicationShard))]
public sealed class SplitReplicationShardCommand : ClusterCmdlet
{
    /// <summary>The shards to split (binds the Id of a piped shard).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ShardIdCompleter))]
    public int[] Id { get; set; } = [];

    /// <summary>Seconds to wait for each split at most (a TimeSpan works too). Default 30.</summary>
    [Parameter]
    [TimeoutSeconds]
    public double Timeout { get; set; } = 30;

    protected override void ProcessRecord()
    {
        ValidateTimeout(Timeout);
        var cluster = ResolveCluster();
        foreach (int id in Id)
        {
            if (!ShouldProcess($"shard {id} of cluster '{cluster.Name}'", "Split it in two")) continue;
            try
            {
                foreach (var half in Await(cluster.Engine.SplitShardAsync(id, TimeoutSpan, StopToken))) WriteObject(half with { Cluster = cluster.Name });
            }
            catch (ClusterNotRunningException e) { ThrowEngineError(e, cluster); }
            catch (ReplicationException e) { WriteEngineError(e, id); }
        }
    }
}
