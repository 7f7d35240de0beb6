namespace Replication.Engine;

/// <summary>
/// A certificate folder lacks a file TLS needs (ca.crt, node.crt/node.key or client.crt/client.key),
/// or the folder itself does not exist. <see cref="ReplicationException.Target"/> is the missing path.
/// </summary>
public sealed class CertificateNotFoundException(string message) : ReplicationException(message)
{
    public override string ErrorId => "CertificateNotFound";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.NotFound;
}
