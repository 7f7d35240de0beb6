namespace Replication.Engine;

/// <summary>No shard with the given id exists.</summary>
public sealed class ShardNotFoundException(int shardId) : ReplicationException($"The cluster has no shard with id {shardId}.")
{
    public override string ErrorId => "ShardNotFound";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.NotFound;
}
