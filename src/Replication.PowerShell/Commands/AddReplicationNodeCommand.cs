using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Client;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Adds a node to a cluster; the ring then moves the node's share of the replicas to it (a bounded number of shards at
/// a time, each by Raft membership change: learner, catch-up by snapshot, promotion, removal of the old replica) and
/// leaderships rebalance. An embedded cluster starts the new node in this process (folder node-N). A node of a cluster
/// of node processes joins by being started in its own process (Start-ReplicationNode -Join); -Endpoint then follows
/// it from the admin side (with progress, and a warning if nothing accepts connections on that endpoint after 5 seconds:
/// it follows a node process, it does not start one). Returns the node once its replicas are in place (progress
/// meanwhile), or once it is registered with -NoWait.
/// </summary>
/// <example>
/// <code>Add-ReplicationNode</code>
/// Adds a node to the current embedded cluster and waits until the ring's moves onto it are done.
/// </example>
/// <example>
/// <code>Add-ReplicationNode -Zone rack-b -NoWait</code>
/// Adds a node in failure domain rack-b (every shard then keeps a replica in a zone of its own where it can) and returns at once.
/// </example>
/// <example>
/// <code>
/// # in another process: Start-ReplicationNode -Path ./n4 -Listen 127.0.0.1:7104 -Join 127.0.0.1:7101 -ClusterSecret $secret -Wait
/// Add-ReplicationNode -Endpoint 127.0.0.1:7104 -Timeout 120
/// </code>
/// Follows a node process that was started to join: waits until it is registered and holds its share.
/// </example>
/// <example>
/// <code>
/// $async = Add-ReplicationNode -Learner
/// Get-ReplicationNode -Id $async.Id | Select-Object Id, Role, LagEntries, LagSeconds
/// </code>
/// Adds an asynchronous replica: a node that joins as a learner (never a voter, not even briefly), follows every shard without counting
/// toward any quorum and never leads. With node processes: Start-ReplicationNode ... -Join ... -Role Learner.
/// </example>
/// <seealso cref="RemoveReplicationNodeCommand"/>
/// <seealso cref="GetReplicationRingCommand"/>
/// <seealso cref="StartReplicationNodeCommand"/>
[Cmdlet(VerbsCommon.Add, "ReplicationNode", DefaultParameterSetName = NewSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(ReplicationNode))]
public sealed class AddReplicationNodeCommand : ClusterCmdlet
{
    public const string NewSet = "New";
    public const string EndpointSet = "Endpoint";

    /// <summary>host:port of a node process started with -Join, to follow (a cluster of node processes).</summary>
    [Parameter(Mandatory = true, ParameterSetName = EndpointSet)]
    [ValidateNotNullOrEmpty]
    public string Endpoint { get; set; } = "";

    /// <summary>The node's failure domain (rack, availability zone): a shard's replicas go to distinct zones first.</summary>
    [Parameter]
    [ValidateNotNull]
    public string? Zone { get; set; }

    /// <summary>The node holds non-voting copies of every shard only (asynchronous replication): it never votes or leads. A new embedded
    /// node joins with it (never a voter, not even briefly); with -Endpoint it turns a node that joined as a voter into a learner (its
    /// voters then move away): start a node process with Start-ReplicationNode -Role Learner to have it join as one.</summary>
    [Parameter]
    public SwitchParameter Learner { get; set; }

    /// <summary>Return once the node is registered, without waiting for the replicas to move.</summary>
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
        string role = (Learner ? " as a learner" : "") + (Zone is null ? "" : $" in zone '{Zone}'");
        if (!ShouldProcess($"cluster '{cluster.Name}'", ParameterSetName == EndpointSet
                ? $"Wait for the node process on {Endpoint} to join{role}, then for its share of the shards to move to it"
                : $"Add a node{role} in this process, then move its share of the shards to it"))
            return;
        try
        {
            var node = ParameterSetName == EndpointSet
                ? WaitForJoin(cluster)
                : Await(cluster.Engine.AddNodeAsync(Zone, Learner, StopToken));
            WriteVerbose($"node {node.Id} registered at {node.Endpoint}");
            if (ParameterSetName == EndpointSet && (Zone is not null || Learner))
                Await(cluster.Engine.SetNodeRoleAsync(node.Id, Zone, Learner ? true : null, TimeoutSpan, StopToken));
            if (!NoWait)
            {
                var pump = new ProgressPump(activityId: 7);
                var task = cluster.Engine.WaitForPlacementAsync(new MoveProgress(pump, $"Moving replicas to node {node.Id}"), TimeoutSpan, StopToken);
                pump.WaitPumping(task, this);
                Await(task);
            }
            WriteObject(cluster.Engine.GetNode(node.Id) with { Cluster = cluster.Name });
        }
        catch (ClusterNotRunningException e) { ThrowEngineError(e, cluster); }
        catch (ReplicationException e) { ThrowEngineError(e, ParameterSetName == EndpointSet ? Endpoint : cluster.Name); }
    }

    /// <summary>How long a node process may take to answer on its endpoint before the wait warns that nothing listens there.</summary>
    private static readonly TimeSpan ListenGrace = TimeSpan.FromSeconds(5);

    /// <summary>
    /// -Endpoint: waits for a node process on that endpoint to register, with progress, and warns once if nothing accepts a
    /// connection there after <see cref="ListenGrace"/>. (It used to wait the whole -Timeout, 10 minutes by default, in
    /// silence: an operator who mistyped the port, or had not started the process, saw a shell that hung.)
    /// </summary>
    private ReplicationNode WaitForJoin(ReplicationCluster cluster)
    {
        var pump = new ProgressPump(activityId: 7);
        string activity = $"Waiting for a node on {Endpoint} to join cluster '{cluster.Name}'";
        pump.Report(new BackupProgress(activity, $"a node process started with Start-ReplicationNode -Listen {Endpoint} -Join <a node of the cluster>", 0, 0));
        var waiting = cluster.Engine.WaitForNodeAsync(Endpoint, TimeoutSpan, StopToken);
        var listening = ClusterClient.AcceptsConnectionsAsync(Endpoint, ListenGrace, StopToken);
        pump.WaitPumping(Task.WhenAny(waiting, listening), this, complete: false);
        if (!waiting.IsCompleted && !listening.Result)
            WriteWarning($"Nothing accepts connections on {Endpoint}: Add-ReplicationNode -Endpoint follows a node process, it does not start one. "
                + $"Start it (Start-ReplicationNode -Path <folder> -Listen {Endpoint} -Join <a node of the cluster> -ClusterSecret ...); this waits up to {Timeout:0.#} s for it.");
        pump.WaitPumping(waiting, this);
        return Await(waiting);
    }
}
