namespace Replication.Engine.Security;

/// <summary>
/// The names of the files in a certificate folder (the layout of CockroachDB's certs directory).
/// A node's folder holds <see cref="Authority"/>, <see cref="NodeCertificate"/> and
/// <see cref="NodeKey"/>; a client's folder holds <see cref="Authority"/>,
/// <see cref="ClientCertificate"/> and <see cref="ClientKey"/>. <see cref="AuthorityKey"/> is needed
/// only to sign new certificates and belongs on the operator's machine, not on the nodes.
/// All files are PEM. <see cref="Authority"/> may hold several CA certificates (a bundle): every one
/// of them is trusted, which is how a new CA is introduced beside the old one during a rotation.
/// </summary>
public static class CertificateFileNames
{
    /// <summary>The trusted cluster CA certificate(s): one or more PEM certificates.</summary>
    public const string Authority = "ca.crt";

    /// <summary>The cluster CA's private key (PKCS#8 PEM). Signs node and client certificates; never read by a node.</summary>
    public const string AuthorityKey = "ca.key";

    /// <summary>A node's certificate (PEM; may be followed by intermediate CA certificates).</summary>
    public const string NodeCertificate = "node.crt";

    /// <summary>A node's private key (PKCS#8 PEM, owner-only permissions on Unix).</summary>
    public const string NodeKey = "node.key";

    /// <summary>A client's certificate (PEM).</summary>
    public const string ClientCertificate = "client.crt";

    /// <summary>A client's private key (PKCS#8 PEM, owner-only permissions on Unix).</summary>
    public const string ClientKey = "client.key";

    /// <summary>The certificate file of <paramref name="role"/>.</summary>
    public static string CertificateFor(CertificateRole role) => role switch
    {
        CertificateRole.Node => NodeCertificate,
        CertificateRole.Client => ClientCertificate,
        _ => throw new ArgumentOutOfRangeException(nameof(role), role, "Unknown certificate role."),
    };

    /// <summary>The private key file of <paramref name="role"/>.</summary>
    public static string KeyFor(CertificateRole role) => role switch
    {
        CertificateRole.Node => NodeKey,
        CertificateRole.Client => ClientKey,
        _ => throw new ArgumentOutOfRangeException(nameof(role), role, "Unknown certificate role."),
    };
}
