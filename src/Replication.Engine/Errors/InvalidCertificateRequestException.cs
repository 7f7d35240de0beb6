namespace Replication.Engine;

/// <summary>
/// New-ReplicationCertificate was asked for a certificate it cannot make: a host name that is not a
/// DNS name, a client name that is empty or too long, a lifetime that is not positive. Nothing was
/// written. <see cref="ReplicationException.Target"/> is the offending value.
/// </summary>
public sealed class InvalidCertificateRequestException(string message) : ReplicationException(message)
{
    public override string ErrorId => "InvalidCertificateRequest";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.InvalidArgument;
}
