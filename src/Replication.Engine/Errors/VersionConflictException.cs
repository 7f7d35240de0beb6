namespace Replication.Engine;

/// <summary>A conditional write found a different version than it expected. Nothing was written.</summary>
public sealed class VersionConflictException(string key, long? expected, long actual)
    : ReplicationException($"Key '{key}' is at version {actual}, not the expected {(expected is 0 ? "absent (0)" : expected?.ToString())}.")
{
    public override string ErrorId => "VersionConflict";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.Conflict;
    public long ActualVersion { get; } = actual;
}
