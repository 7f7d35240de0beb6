namespace Replication.Engine;

/// <summary>
/// An operation could not complete within its timeout because a shard had no leader or its
/// leader could not reach a quorum. A write that fails this way may or may not have been
/// applied (its outcome is unknown); it was not acknowledged.
/// </summary>
public sealed class QuorumUnavailableException(int shard, TimeSpan timeout, string detail)
    : ReplicationException($"Shard {shard} could not reach a quorum within {timeout.TotalSeconds:0.###} s: {detail}")
{
    public override string ErrorId => "QuorumUnavailable";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.Timeout;
    public int Shard { get; } = shard;
}
