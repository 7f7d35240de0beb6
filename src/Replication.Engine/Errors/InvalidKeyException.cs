namespace Replication.Engine;

/// <summary>An empty key, a key or value over its size limit, or otherwise malformed input.</summary>
public sealed class InvalidKeyException(string errorId, string message) : ReplicationException(message)
{
    public const string EmptyKey = "EmptyKey";
    public const string KeyTooLong = "KeyTooLong";
    public const string ValueTooLarge = "ValueTooLarge";
    public const string InvalidPrefix = "InvalidPrefix";
    public override string ErrorId { get; } = errorId;
    public override ReplicationErrorKind Kind => ReplicationErrorKind.InvalidArgument;
}
