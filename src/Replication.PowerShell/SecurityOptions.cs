using System.Management.Automation;
using System.Security;
using Replication.Engine;
using Replication.Engine.Security;

namespace Replication.PowerShell;

/// <summary>Turns a cmdlet's -ClusterSecret / -CertificatePath into the engine's <see cref="TransportSecurity"/>: exactly one of them.</summary>
internal static class SecurityOptions
{
    /// <summary>ErrorId when neither or both of -ClusterSecret and -CertificatePath are given.</summary>
    public const string SecurityRequired = "SecurityRequired";

    public static TransportSecurity Resolve(PSCmdlet cmdlet, SecureString? secret, string? certificatePath, CertificateRole role)
    {
        if ((secret is null) == (certificatePath is null))
            cmdlet.ThrowTerminatingError(new ErrorRecord(new ArgumentException(
                "Give exactly one of -ClusterSecret (a shared secret: authenticates, does not encrypt) and -CertificatePath (TLS with certificates from New-ReplicationCertificate)."),
                SecurityRequired, ErrorCategory.InvalidArgument, null));
        if (secret is not null) return TransportSecurity.SharedSecret(SecretConverter.ToClusterSecret(secret));
        string folder = cmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath(certificatePath!);
        try
        {
            return TransportSecurity.Tls(folder, role);
        }
        catch (ReplicationException e)
        {
            cmdlet.ThrowTerminatingError(new ErrorRecord(e, e.ErrorId, e.Kind == ReplicationErrorKind.NotFound ? ErrorCategory.ObjectNotFound : ErrorCategory.InvalidArgument, folder));
            throw; // unreachable
        }
    }
}
