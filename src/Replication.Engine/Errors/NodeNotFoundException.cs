namespace Replication.Engine;

/// <summary>No node with the given id belongs to the cluster.</summary>
public sealed class NodeNotFoundException(int nodeId) : ReplicationException($"The cluster has no node with id {nodeId}.")
{
    public override string ErrorId => "NodeNotFound";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.NotFound;
    public int NodeId { get; } = nodeId;
}
