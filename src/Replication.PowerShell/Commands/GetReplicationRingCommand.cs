using System.Management.Automation;
using Replication.Engine;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Gets the consistent-hash ring: one row per node with its tokens (virtual nodes), the share of the hash space they
/// own, the shards it holds now, the shards the ring places on it (they differ while replicas move), the shards it
/// leads and the bytes it holds.
/// </summary>
/// <example>
/// <code>Get-ReplicationRing</code>
/// Shows each node's share of the ring and what it holds and leads.
/// </example>
/// <example>
/// <code>Get-ReplicationRing | Measure-Object -Property ShardsLed -Maximum -Minimum</code>
/// Checks how evenly leaderships are spread (every node leads the floor or ceiling of shards / nodes).
/// </example>
/// <seealso cref="InvokeReplicationRebalanceCommand"/>
/// <seealso cref="AddReplicationNodeCommand"/>
/// <seealso cref="GetReplicationShardCommand"/>
[Cmdlet(VerbsCommon.Get, "ReplicationRing")]
[OutputType(typeof(ReplicationRingEntry))]
public sealed class GetReplicationRingCommand : ClusterCmdlet
{
    protected override void ProcessRecord()
    {
        var cluster = ResolveCluster();
        try
        {
            foreach (var entry in Await(cluster.Engine.GetRingAsync(StopToken))) WriteObject(entry with { Cluster = cluster.Name });
        }
        catch (ClusterNotRunningException e) { ThrowEngineError(e, cluster); }
        catch (ReplicationException e) { WriteEngineError(e, cluster.Name); }
    }
}
