namespace Replication.Engine;

/// <summary>
/// Remove-ReplicationNode was refused: once the node's replicas had moved away, too few nodes would be left to hold
/// ReplicationFactor voters of every shard. Nothing was changed. -Force removes it anyway (shards then keep fewer replicas).
/// </summary>
public sealed class ReplicationFactorAtRiskException(int node, string message) : ReplicationException(message)
{
    public const string Id = "ReplicationFactorAtRisk";
    public override string ErrorId => Id;
    public override ReplicationErrorKind Kind => ReplicationErrorKind.InvalidState;
    public int Node { get; } = node;
}
