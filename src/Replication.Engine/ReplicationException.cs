namespace Replication.Engine;

/// <summary>
/// Base of every error the engine reports to its callers. <see cref="ErrorId"/> is stable
/// (PowerShell turns it into the ErrorRecord's ErrorId; tests assert it), and
/// <see cref="Kind"/> says what sort of failure it is, so callers can pick a category
/// without knowing every subclass.
/// </summary>
public abstract class ReplicationException : Exception
{
    protected ReplicationException(string message, Exception? inner = null) : base(message, inner) { }

    public abstract string ErrorId { get; }
    public abstract ReplicationErrorKind Kind { get; }
    /// <summary>The input the error is about (a key, a node id), if any.</summary>
    public object? Target { get; init; }
}

/// <summary>Broad classes of failure; the PowerShell layer maps them to ErrorCategory.</summary>
public enum ReplicationErrorKind
{
    InvalidArgument,
    NotFound,
    InvalidState,
    Timeout,
    Conflict,
    Unavailable,
    Corrupt,
}

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

/// <summary>No node with the given id belongs to the cluster.</summary>
public sealed class NodeNotFoundException(int nodeId) : ReplicationException($"The cluster has no node with id {nodeId}.")
{
    public override string ErrorId => "NodeNotFound";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.NotFound;
    public int NodeId { get; } = nodeId;
}

/// <summary>No shard with the given id exists.</summary>
public sealed class ShardNotFoundException(int shardId) : ReplicationException($"The cluster has no shard with id {shardId}.")
{
    public override string ErrorId => "ShardNotFound";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.NotFound;
}

/// <summary>The cluster was removed (or is shutting down); nothing can be done with it.</summary>
public sealed class ClusterNotRunningException(string cluster) : ReplicationException($"Cluster '{cluster}' is not running; it was removed.")
{
    public override string ErrorId => "ClusterNotRunning";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.InvalidState;
}

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

/// <summary>A conditional write found a different version than it expected. Nothing was written.</summary>
public sealed class VersionConflictException(string key, long? expected, long actual)
    : ReplicationException($"Key '{key}' is at version {actual}, not the expected {(expected is 0 ? "absent (0)" : expected?.ToString())}.")
{
    public override string ErrorId => "VersionConflict";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.Conflict;
    public long ActualVersion { get; } = actual;
}

/// <summary>Stored data failed a check (checksum, schema); the node refuses to serve it.</summary>
public sealed class StorageCorruptException(string message) : ReplicationException(message)
{
    public override string ErrorId => "StorageCorrupt";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.Corrupt;
}

/// <summary>Options for creating a cluster are invalid or conflict with what the data folder holds.</summary>
public sealed class ClusterOptionsException(string errorId, string message) : ReplicationException(message)
{
    public const string Invalid = "InvalidClusterOptions";
    public const string PathMismatch = "ClusterPathMismatch";
    public override string ErrorId { get; } = errorId;
    public override ReplicationErrorKind Kind => ReplicationErrorKind.InvalidArgument;
}
