using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Replication.Engine.Security;

/// <summary>
/// One loaded, checked set of TLS credentials: our certificate with its private key, the
/// intermediates that follow it in its file (if any), and the CA certificates we trust. Immutable
/// and thread-safe; a rotation produces a new instance (<see cref="CertificateSource"/>), and
/// connections already established keep the instance they started with.
/// </summary>
internal sealed class TlsIdentity
{
    private TlsIdentity(X509Certificate2 certificate, X509Certificate2Collection intermediates, X509Certificate2Collection authorities, CertificateRole role)
    {
        Certificate = certificate;
        Intermediates = intermediates;
        Authorities = authorities;
        Role = role;
        // Offline: never fetch anything while building the chain we send; the peer has the CA.
        Context = SslStreamCertificateContext.Create(certificate, intermediates, offline: true);
    }

    /// <summary>Our certificate, with its private key.</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>CA certificates between ours and a trusted CA (usually none).</summary>
    public X509Certificate2Collection Intermediates { get; }

    /// <summary>The only trust anchors for peers' certificates (every certificate in ca.crt).</summary>
    public X509Certificate2Collection Authorities { get; }

    /// <summary>The role our certificate carries (a node's certificate can also dial as a client).</summary>
    public CertificateRole Role { get; }

    /// <summary>What SslStream presents: our certificate and intermediates.</summary>
    public SslStreamCertificateContext Context { get; }

    /// <summary>
    /// Reads and checks the files of <paramref name="role"/> in <paramref name="folder"/>
    /// (<see cref="CertificateFileNames"/>): ca.crt holds only CA certificates; the certificate and
    /// key are PEM and form a pair; the key is owner-only on Unix; the certificate has the role's
    /// Extended Key Usage and is valid now under ca.crt.
    /// </summary>
    /// <exception cref="CertificateNotFoundException">The folder or one of its files is missing.</exception>
    /// <exception cref="CertificateInvalidException">A file is present but unusable (the message says which and why).</exception>
    public static TlsIdentity Load(string folder, CertificateRole role)
    {
        if (!Directory.Exists(folder))
            throw new CertificateNotFoundException($"The certificate folder '{folder}' does not exist. Create its files with New-ReplicationCertificate.") { Target = folder };
        string caPath = Path.Combine(folder, CertificateFileNames.Authority);
        string certificatePath = Path.Combine(folder, CertificateFileNames.CertificateFor(role));
        string keyPath = Path.Combine(folder, CertificateFileNames.KeyFor(role));
        foreach (var path in new[] { caPath, certificatePath, keyPath })
            if (!File.Exists(path))
                throw new CertificateNotFoundException($"The certificate folder '{folder}' has no {Path.GetFileName(path)}; a {role.ToString().ToLowerInvariant()} needs "
                    + $"{CertificateFileNames.Authority}, {CertificateFileNames.CertificateFor(role)} and {CertificateFileNames.KeyFor(role)} (New-ReplicationCertificate -{role} -Path '{folder}' creates them).") { Target = path };

        var authorities = LoadAuthorities(caPath);
        CheckKeyPermissions(keyPath);
        X509Certificate2 certificate;
        var intermediates = new X509Certificate2Collection();
        try
        {
            certificate = X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
            var all = new X509Certificate2Collection();
            all.ImportFromPemFile(certificatePath);
            for (int i = 1; i < all.Count; i++) intermediates.Add(all[i]);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            // ArgumentException: the key does not match the certificate's public key.
            throw new CertificateInvalidException($"{certificatePath} and {Path.GetFileName(keyPath)} are not a PEM certificate and its private key: {e.Message}", e) { Target = certificatePath };
        }
        return FromCertificate(certificate, intermediates, authorities, role, certificatePath);
    }

    /// <summary>
    /// Checks and wraps a certificate that is already loaded (e.g. from a certificate store): it must
    /// have its private key, the role's Extended Key Usage, and be valid now under <paramref name="authorities"/>.
    /// </summary>
    /// <exception cref="CertificateInvalidException">It does not pass (the message says why).</exception>
    public static TlsIdentity FromCertificate(X509Certificate2 certificate, X509Certificate2Collection intermediates, X509Certificate2Collection authorities,
        CertificateRole role, string source)
    {
        if (authorities.Count == 0)
            throw new CertificateInvalidException($"No CA certificate to trust was given for {source}.") { Target = source };
        foreach (var authority in authorities) CheckIsAuthority(authority, source);
        if (!certificate.HasPrivateKey)
            throw new CertificateInvalidException($"The certificate {CertificateChecks.Describe(certificate)} from {source} has no private key.") { Target = source };
        var actual = CertificateChecks.RoleOf(certificate);
        if (actual != role && !(role == CertificateRole.Client && actual == CertificateRole.Node))
            throw new CertificateInvalidException($"{source} holds {(actual is null ? "a certificate without TLS client authentication" : $"a {actual.ToString()!.ToLowerInvariant()} certificate")}, "
                + $"but a {role.ToString().ToLowerInvariant()} certificate is needed (New-ReplicationCertificate -{role}).") { Target = source };
        if (CertificateChecks.CheckChain(certificate, authorities, intermediates) is { } problem)
            throw new CertificateInvalidException($"{source}: {problem}.") { Target = source };
        if (OperatingSystem.IsWindows())
        {
            // SChannel cannot use an ephemeral (PEM-imported) key for TLS; a PKCS#12 round trip gives
            // it a key it can use. Elsewhere (OpenSSL) the PEM key is used as it is.
            using var ephemeral = certificate;
#pragma warning disable SYSLIB0057 // the X509CertificateLoader replacement does not exist in net8.0
            certificate = new X509Certificate2(ephemeral.Export(X509ContentType.Pkcs12));
#pragma warning restore SYSLIB0057
        }
        return new TlsIdentity(certificate, intermediates, authorities, role);
    }

    /// <summary>Every certificate in a CA bundle file; each must be a CA.</summary>
    /// <exception cref="CertificateInvalidException">Not PEM, empty, or holding a certificate that is not a CA.</exception>
    public static X509Certificate2Collection LoadAuthorities(string caPath)
    {
        var authorities = new X509Certificate2Collection();
        try
        {
            authorities.ImportFromPemFile(caPath);
        }
        catch (CryptographicException e)
        {
            throw new CertificateInvalidException($"{caPath} is not a PEM certificate bundle: {e.Message}", e) { Target = caPath };
        }
        if (authorities.Count == 0)
            throw new CertificateInvalidException($"{caPath} holds no PEM certificate.") { Target = caPath };
        foreach (var authority in authorities) CheckIsAuthority(authority, caPath);
        return authorities;
    }

    private static void CheckIsAuthority(X509Certificate2 authority, string source)
    {
        var constraints = authority.Extensions.OfType<X509BasicConstraintsExtension>().FirstOrDefault();
        if (constraints is not { CertificateAuthority: true })
            throw new CertificateInvalidException($"{source}: {CertificateChecks.Describe(authority)} is not a CA certificate (no CA basic constraint), so it cannot be a trust anchor.") { Target = source };
    }

    /// <summary>On Unix a private key must not be readable, writable or executable by group or others (as CockroachDB and ssh insist).</summary>
    private static void CheckKeyPermissions(string keyPath)
    {
        if (OperatingSystem.IsWindows()) return;
        var mode = File.GetUnixFileMode(keyPath);
        const UnixFileMode open = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
            | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;
        if ((mode & open) != 0)
            throw new CertificateInvalidException($"The private key {keyPath} is accessible to other users (mode {Convert.ToString((int)mode, 8)}); "
                + $"restrict it to its owner (chmod 600 '{keyPath}').") { Target = keyPath };
    }
}
