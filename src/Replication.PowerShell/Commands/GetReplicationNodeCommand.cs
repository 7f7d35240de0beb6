using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>Gets the status of a cluster's nodes: run state, shards led and hosted, Raft term and indexes, lag.</summary>
/// <example>
/// <code>Get-ReplicationNode | Format-Table</code>
/// Shows every node of the current cluster: endpoint, state, shards led and hosted, term, commit and applied index, and lag.
/// </example>
/// <example>
/// <code>Get-ReplicationNode -Id 2 | Stop-ReplicationNode -Kill</code>
/// Pipes node 2 to Stop-ReplicationNode, which routes it to the node's own cluster.
/// </example>
[Cmdlet(VerbsCommon.Get, "ReplicationNode", DefaultParameterSetName = DefaultSet)]
[OutputType(typeof(ReplicationNode))]
public sealed class GetReplicationNodeCommand : ClusterCmdlet
{
    public const string DefaultSet = "Default";

    /// <summary>Node ids; default: every node. An unknown id is a non-terminating NodeNotFound error.</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = DefaultSet)]
    [ArgumentCompleter(typeof(NodeIdCompleter))]
    public int[]? Id { get; set; }

    protected override void ProcessRecord()
    {
        var cluster = ResolveCluster();
        try
        {
            if (Id is null || Id.Length == 0)
            {
                WriteObject(cluster.Engine.GetNodes(), enumerateCollection: true);
                return;
            }
            foreach (var id in Id)
            {
                try { WriteObject(cluster.Engine.GetNode(id)); }
                catch (NodeNotFoundException e) { WriteEngineError(e, id); }
            }
        }
        catch (ReplicationException e)
        {
            ThrowEngineError(e, cluster);
        }
    }
}
