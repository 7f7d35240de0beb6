namespace Replication.Engine;

/// <summary>
/// An operation could not complete within its timeout because a shard had no leader or its
/// leader could not reach a quorum. A write that fails this way may or may not have been
/// applied (its outcome is unknown); it was not acknowledged.
/// </summary>
public sealed class QuorumUnavailableException : ReplicationException
{
    public QuorumUnavailableException(int shard, TimeSpan timeout, string detail)
        : base($"Shard {shard} could not reach a quorum within {timeout.TotalSeconds:0.###} s: {detail}") => Shard = shard;

    /// <summary>As received from a node (the message as it was written there).</summary>
    internal QuorumUnavailableException(string message, int shard) : base(message) => Shard = shard;

    public override string ErrorId => "QuorumUnavailable";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.Timeout;
    public int Shard { get; }
}
