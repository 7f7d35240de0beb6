namespace Replication.Engine;

/// <summary>Options for creating a cluster are invalid or conflict with what the data folder holds.</summary>
public sealed class ClusterOptionsException(string errorId, string message) : ReplicationException(message)
{
    public const string Invalid = "InvalidClusterOptions";
    public const string PathMismatch = "ClusterPathMismatch";
    public override string ErrorId { get; } = errorId;
    public override ReplicationErrorKind Kind => ReplicationErrorKind.InvalidArgument;
}
