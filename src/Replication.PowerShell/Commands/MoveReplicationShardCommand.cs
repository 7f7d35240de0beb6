using System.Management.Automation;
using Replication.Engine;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Moves one replica of a shard to another node by hand: a pin the ring keeps from then on (the shard's voters are its
/// current ones with -FromNode replaced by -ToNode; without -FromNode, the voter on the node holding the most
/// replicas). -Unpin drops the pin and lets the ring place the shard again. Waits until the shard's replicas are in
/// place, unless -NoWait. Returns the shard.
/// </summary>
/// <example>
/// <code>
/// $shard = Get-ReplicationShard | Where-Object Voters -notcontains 4 | Select-Object -First 1
/// Move-ReplicationShard -Shard $shard.Id -ToNode 4
/// </code>
/// Moves a replica of a shard that node 4 does not hold to node 4, and keeps it there.
/// </example>
/// <example>
/// <code>Move-ReplicationShard -Shard 3 -Unpin</code>
/// Lets the ring place shard 3 again.
/// </example>
/// <seealso cref="InvokeReplicationRebalanceCommand"/>
/// <seealso cref="GetReplicationShardCommand"/>
[Cmdlet(VerbsCommon.Move, "ReplicationShard", SupportsShouldProcess = true, DefaultParameterSetName = MoveSet)]
[OutputType(typeof(ReplicationShard))]
public sealed class MoveReplicationShardCommand : ClusterCmdlet
{
    public const string MoveSet = "Move";
    public const string UnpinSet = "Unpin";

    /// <summary>The shard (binds the Id of a piped shard).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("Id")]
    [ArgumentCompleter(typeof(ShardIdCompleter))]
    public int Shard { get; set; }

    /// <summary>The node that receives the replica.</summary>
    [Parameter(Mandatory = true, Position = 1, ParameterSetName = MoveSet)]
    [ArgumentCompleter(typeof(NodeIdCompleter))]
    public int ToNode { get; set; }

    /// <summary>The node whose replica moves; default: the voter on the node holding the most replicas.</summary>
    [Parameter(ParameterSetName = MoveSet)]
    [ArgumentCompleter(typeof(NodeIdCompleter))]
    public int FromNode { get; set; }

    /// <summary>Drop the shard's pin: the ring places it again.</summary>
    [Parameter(Mandatory = true, ParameterSetName = UnpinSet)]
    public SwitchParameter Unpin { get; set; }

    /// <summary>Return once the pin is written, without waiting for the replica to move.</summary>
    [Parameter]
    public SwitchParameter NoWait { get; set; }

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
            var shard = cluster.Engine.GetShards().FirstOrDefault(s => s.Id == Shard) ?? throw new ShardNotFoundException(Shard) { Target = Shard };
            IReadOnlyList<int>? pin = null;
            if (!Unpin)
            {
                var voters = shard.Placement.Count > 0 ? shard.Placement : shard.Voters;
                if (voters.Contains(ToNode))
                    throw new ClusterOptionsException(ClusterOptionsException.Invalid, $"Node {ToNode} already holds a replica of shard {Shard}.") { Target = ToNode };
                int from = FromNode;
                if (from == 0)
                {
                    var held = cluster.Engine.GetShards().SelectMany(s => s.Voters).GroupBy(n => n).ToDictionary(g => g.Key, g => g.Count());
                    from = voters.OrderByDescending(v => held.GetValueOrDefault(v)).ThenBy(v => v).First();
                }
                else if (!voters.Contains(from))
                    throw new ClusterOptionsException(ClusterOptionsException.Invalid, $"Node {from} holds no voter of shard {Shard} (its voters: {string.Join(",", voters)}).") { Target = from };
                pin = voters.Select(v => v == from ? ToNode : v).ToArray();
            }
            string what = pin is null ? "Drop its pin" : $"Pin its voters to nodes {string.Join(",", pin)}";
            if (!ShouldProcess($"shard {Shard} of cluster '{cluster.Name}'", what)) return;
            Await(cluster.Engine.PinShardAsync(Shard, pin, TimeoutSpan, StopToken));
            if (!NoWait)
            {
                var pump = new ProgressPump(activityId: 9);
                var task = cluster.Engine.WaitForPlacementAsync(new MoveProgress(pump, $"Moving shard {Shard}"), TimeoutSpan, StopToken);
                pump.WaitPumping(task, this);
                Await(task);
            }
            WriteObject(cluster.Engine.GetShards().First(s => s.Id == Shard) with { Cluster = cluster.Name });
        }
        catch (ClusterNotRunningException e) { ThrowEngineError(e, cluster); }
        catch (ReplicationException e) { WriteEngineError(e, Shard); }
    }
}
