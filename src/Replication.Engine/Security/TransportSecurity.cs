using System.Security.Cryptography.X509Certificates;
using Replication.Engine.Transport;

namespace Replication.Engine.Security;

/// <summary>
/// How a node or client protects its connections (docs/wire-protocol.md): one of two modes, chosen
/// once for a <see cref="TcpTransport"/> or a client connection.
/// <list type="bullet">
/// <item><see cref="SharedSecret"/>: the HMAC-SHA256 challenge-response over a key derived from the
/// cluster secret. Authenticates both sides; does NOT encrypt (anyone on the path reads keys and
/// values). For clusters whose traffic never leaves the machine (loopback).</item>
/// <item><see cref="Tls(string, CertificateRole)"/>: TLS 1.3, mutual: both sides present a certificate
/// chained to the cluster CA (ca.crt, the only trust anchors); a listener presents a node certificate,
/// a dialer a node or client certificate, and only a node certificate may speak for a node. Encrypts
/// and authenticates. The HMAC challenge is not run inside TLS: the TLS handshake already proves
/// possession of a CA-signed key on both sides, bound to this connection, and a second, shared
/// secret on every node would add a credential to distribute and rotate without protecting against
/// anything TLS does not (whoever could mint a node certificate, i.e. holds ca.key, is the operator).</item>
/// </list>
/// Immutable and thread-safe. <see cref="ToString"/> never shows a secret or a key.
/// </summary>
public sealed class TransportSecurity
{
    private readonly ClusterSecret? _secret;
    private readonly ClusterKey? _fixedKey;
    private readonly Guid _fixedKeyCluster;

    private TransportSecurity(ClusterSecret? secret, ClusterKey? fixedKey, Guid fixedKeyCluster, CertificateSource? certificates)
    {
        _secret = secret;
        _fixedKey = fixedKey;
        _fixedKeyCluster = fixedKeyCluster;
        Certificates = certificates;
    }

    /// <summary>True for TLS, false for the shared-secret mode (which does not encrypt).</summary>
    public bool IsTls => Certificates is not null;

    /// <summary>The certificate folder in TLS mode (null for the shared-secret mode and for certificates given as objects).</summary>
    public string? CertificateFolder => Certificates?.Folder;

    /// <summary>The role of this side's certificate in TLS mode; null in the shared-secret mode.</summary>
    public CertificateRole? Role => Certificates?.Role;

    /// <summary>TLS credentials (null in the shared-secret mode).</summary>
    internal CertificateSource? Certificates { get; }

    /// <summary>The shared-secret mode: every connection runs the HMAC challenge with a key derived from <paramref name="secret"/>.</summary>
    public static TransportSecurity SharedSecret(ClusterSecret secret)
    {
        ArgumentNullException.ThrowIfNull(secret);
        return new TransportSecurity(secret, null, Guid.Empty, null);
    }

    /// <summary>
    /// TLS with the files of <paramref name="role"/> in <paramref name="certificateFolder"/>
    /// (<see cref="CertificateFileNames"/>): ca.crt, and node.crt/node.key or client.crt/client.key.
    /// They are read and checked now, so a bad folder fails here and not at the first connection;
    /// afterwards every new connection picks up replaced files (rotation, see <see cref="CertificateSource"/>).
    /// A node passes <see cref="CertificateRole.Node"/> for its transport AND for the client connections it
    /// dials to other nodes (forwarding, join); Connect-ReplicationCluster passes <see cref="CertificateRole.Client"/>.
    /// </summary>
    /// <exception cref="CertificateNotFoundException">The folder or a file is missing.</exception>
    /// <exception cref="CertificateInvalidException">A file cannot be used (not PEM, key and certificate not a pair, not
    /// signed by ca.crt, expired, wrong role, private key readable by others on Unix).</exception>
    public static TransportSecurity Tls(string certificateFolder, CertificateRole role)
    {
        ArgumentException.ThrowIfNullOrEmpty(certificateFolder);
        CheckRole(role);
        return new TransportSecurity(null, null, Guid.Empty, CertificateSource.FromFolder(certificateFolder, role));
    }

    /// <summary>
    /// TLS with a certificate given as an object (e.g. from the Windows certificate store or
    /// Cert:\CurrentUser\My); it must have its private key. <paramref name="authorities"/> are the
    /// only CA certificates trusted (e.g. from a ca.crt). Never reloaded: rotating means restarting
    /// with the new certificate.
    /// </summary>
    /// <exception cref="CertificateInvalidException">The certificate has no private key, lacks the role, or is not valid under <paramref name="authorities"/>.</exception>
    public static TransportSecurity Tls(X509Certificate2 certificate, X509Certificate2Collection authorities, CertificateRole role)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        ArgumentNullException.ThrowIfNull(authorities);
        CheckRole(role);
        return new TransportSecurity(null, null, Guid.Empty, CertificateSource.Fixed(certificate, authorities, role));
    }

    /// <summary>
    /// Reads a CA bundle file (one or more PEM CA certificates), for <see cref="Tls(X509Certificate2, X509Certificate2Collection, CertificateRole)"/>.
    /// </summary>
    /// <exception cref="CertificateNotFoundException">The file does not exist.</exception>
    /// <exception cref="CertificateInvalidException">It is not PEM, is empty, or holds a certificate that is not a CA.</exception>
    public static X509Certificate2Collection LoadAuthorities(string caFile)
    {
        ArgumentException.ThrowIfNullOrEmpty(caFile);
        if (!File.Exists(caFile)) throw new CertificateNotFoundException($"The CA certificate file '{caFile}' does not exist.") { Target = caFile };
        return TlsIdentity.LoadAuthorities(caFile);
    }

    /// <summary>The shared-secret mode with an already derived key, valid for <paramref name="clusterId"/> only (the TcpTransport constructor that takes a key).</summary>
    internal static TransportSecurity FromKey(ClusterKey key, Guid clusterId)
    {
        ArgumentNullException.ThrowIfNull(key);
        return new TransportSecurity(null, key, clusterId, null);
    }

    /// <summary>The shared-secret key for <paramref name="clusterId"/>, or null in TLS mode or when this side holds only another cluster's key.</summary>
    internal ClusterKey? KeyFor(Guid clusterId)
    {
        if (_secret is not null) return _secret.DeriveKey(clusterId);
        if (_fixedKey is not null && clusterId == _fixedKeyCluster) return _fixedKey;
        return null;
    }

    /// <summary>"shared secret (not encrypted)" or "TLS 1.3 (node certificate from /path)". Never a secret.</summary>
    public override string ToString() => Certificates is { } c
        ? $"TLS 1.3 ({c.Role.ToString().ToLowerInvariant()} certificate {(c.Folder is null ? "given as an object" : $"from {c.Folder}")})"
        : "shared secret (authenticated, not encrypted)";

    private static void CheckRole(CertificateRole role)
    {
        if (role is not (CertificateRole.Node or CertificateRole.Client))
            throw new ArgumentOutOfRangeException(nameof(role), role, "A certificate role is Node or Client.");
    }
}
