namespace Replication.Engine;

/// <summary>
/// A certificate or key file exists but cannot be used: not PEM, a key that does not match its
/// certificate, a certificate not signed by a CA in ca.crt, expired or not yet valid, of the wrong
/// role (a client certificate where a node's is needed), a CA file holding a non-CA certificate, or a
/// private key readable by other users (Unix). The message names the file and the reason, never key
/// material. <see cref="ReplicationException.Target"/> is the file at fault.
/// </summary>
public sealed class CertificateInvalidException(string message, Exception? inner = null) : ReplicationException(message, inner)
{
    public override string ErrorId => "CertificateInvalid";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.InvalidArgument;
}
