namespace Replication.Engine;

/// <summary>No shard with the given id exists.</summary>
public sealed class ShardNotFoundException : ReplicationException
{
    public ShardNotFoundException(int shardId) : this($"The cluster has no shard with id {shardId}.", shardId) { }

    internal ShardNotFoundException(string message, int shardId) : base(message) => ShardId = shardId;

    public override string ErrorId => "ShardNotFound";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.NotFound;
    public int ShardId { get; }
}
