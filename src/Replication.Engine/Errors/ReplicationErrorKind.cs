namespace Replication.Engine;

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
