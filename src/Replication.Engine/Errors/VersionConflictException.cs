namespace Replication.Engine;

/// <summary>A conditional write found a different version than it expected. Nothing was written.</summary>
public sealed class VersionConflictException : ReplicationException
{
    public VersionConflictException(string key, long? expected, long actual)
        : base($"Key '{key}' is at version {actual}, not the expected {(expected is 0 ? "absent (0)" : expected?.ToString())}.") => ActualVersion = actual;

    /// <summary>As received from a node (the message as it was written there).</summary>
    internal VersionConflictException(string message, long actual) : base(message) => ActualVersion = actual;

    public override string ErrorId => "VersionConflict";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.Conflict;
    public long ActualVersion { get; }
}
