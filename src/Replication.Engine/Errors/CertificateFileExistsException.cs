namespace Replication.Engine;

/// <summary>
/// New-ReplicationCertificate would overwrite an existing certificate or key file (and was not told
/// to with -Force, or -Rotate for a CA). Nothing was written. <see cref="ReplicationException.Target"/>
/// is the existing file.
/// </summary>
public sealed class CertificateFileExistsException(string message) : ReplicationException(message)
{
    public override string ErrorId => "CertificateFileExists";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.InvalidState;
}
