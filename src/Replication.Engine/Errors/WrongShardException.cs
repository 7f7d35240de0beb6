namespace Replication.Engine;

/// <summary>
/// A request reached a shard that no longer owns the key (it split; the sender's shard map was older). Nothing was
/// done with it. Routers retry with the current map on their own; a caller sees it only if the map did not catch up
/// within the request's timeout.
/// </summary>
public sealed class WrongShardException(int shard, string message) : ReplicationException(message)
{
    public const string Id = "WrongShard";
    public override string ErrorId => Id;
    public override ReplicationErrorKind Kind => ReplicationErrorKind.Unavailable;
    public int Shard { get; } = shard;
}
