namespace Replication.Engine;

/// <summary>
/// An operation that stops a node (a cold backup) was refused because some shard the node hosts
/// would be left without a running quorum. Nothing was stopped.
/// </summary>
public sealed class QuorumAtRiskException(int nodeId, int shard)
    : ReplicationException($"Stopping node {nodeId} would leave shard {shard} without a running quorum; start the stopped replicas first.")
{
    public override string ErrorId => "QuorumAtRisk";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.InvalidState;
    public int NodeId { get; } = nodeId;
    public int Shard { get; } = shard;
}
