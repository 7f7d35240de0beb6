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
    /// <summary>The peer could not prove it knows the cluster secret (or we could not).</summary>
    Unauthorized,
}
