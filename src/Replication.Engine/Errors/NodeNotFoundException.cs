namespace Replication.Engine;

/// <summary>No node with the given id belongs to the cluster.</summary>
public sealed class NodeNotFoundException : ReplicationException
{
    public NodeNotFoundException(int nodeId) : this($"The cluster has no node with id {nodeId}.", nodeId) { }

    internal NodeNotFoundException(string message, int nodeId) : base(message) => NodeId = nodeId;

    public override string ErrorId => "NodeNotFound";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.NotFound;
    public int NodeId { get; }
}
