namespace Replication.Engine;

/// <summary>
/// An operation that takes a node out of service (a cold backup, a rebuild) was refused because some shard
/// the node belongs to would be left without a running quorum. Nothing was done.
/// </summary>
public sealed class QuorumAtRiskException : ReplicationException
{
    public QuorumAtRiskException(int nodeId, int shard)
        : this($"Taking node {nodeId} out of service would leave shard {shard} without a running quorum; start the stopped replicas first.", nodeId, shard) { }

    internal QuorumAtRiskException(string message, int nodeId, int shard) : base(message)
    {
        NodeId = nodeId;
        Shard = shard;
    }

    public override string ErrorId => "QuorumAtRisk";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.InvalidState;
    public int NodeId { get; }
    public int Shard { get; }
}
