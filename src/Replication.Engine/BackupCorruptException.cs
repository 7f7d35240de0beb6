namespace Replication.Engine;

/// <summary>
/// A backup failed verification: its manifest is missing, unreadable or fails its checksum, or a
/// file is missing, truncated, altered (SHA-256 mismatch) or does not hold what the manifest says.
/// <see cref="File"/> names the file at fault. Nothing was restored from it.
/// </summary>
public sealed class BackupCorruptException(string file, string message) : ReplicationException(message)
{
    public override string ErrorId => "BackupCorrupt";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.Corrupt;
    /// <summary>Full path of the file that failed its check.</summary>
    public string File { get; } = file;
}
