using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Replication.Engine.Security;

/// <summary>
/// Creates a cluster's certificates into folders, as <c>cockroach cert create-ca / create-node /
/// create-client</c> do (New-ReplicationCertificate calls this). File names: <see cref="CertificateFileNames"/>.
/// <para>
/// Keys are ECDSA P-256 with SHA-256 signatures: every TLS 1.3 stack (OpenSSL, SChannel, Apple)
/// supports them, a handshake signs and verifies several times faster than with RSA-2048 at a
/// higher security level, and the files stay small. Only System.Security.Cryptography is used
/// (<see cref="CertificateRequest"/>); nothing here implements cryptography.
/// </para>
/// <para>
/// Certificates: the CA is self-signed, CA:true with path length 0, key usage certificate and CRL
/// signing. A node certificate has CN=node, Extended Key Usage serverAuth + clientAuth and Subject
/// Alternative Names for its host names and addresses (a dialer checks that the address it dialled
/// is among them). A client certificate has CN=&lt;name&gt; and clientAuth only, so it can neither
/// listen nor speak for a node (<see cref="CertificateRole"/>). Serial numbers are 128 random bits;
/// validity starts 5 minutes in the past (clock skew) and never ends after the CA's.
/// </para>
/// <para>
/// Files: PEM; private keys PKCS#8, created owner-only (0600) on Unix before any byte is written
/// (on Windows they inherit the folder's ACL: keep it private). Each file is written to a temporary
/// name and renamed into place, so a node reading the folder never sees half a file, and nothing
/// is written at all when a file exists and overwriting was not asked for. Stateless, thread-safe.
/// </para>
/// </summary>
public static class ClusterCertificates
{
    /// <summary>Default CA lifetime (10 years, as CockroachDB).</summary>
    public static readonly TimeSpan DefaultAuthorityLifetime = TimeSpan.FromDays(3650);

    /// <summary>Default node and client certificate lifetime (5 years, as CockroachDB).</summary>
    public static readonly TimeSpan DefaultCertificateLifetime = TimeSpan.FromDays(1825);

    /// <summary>The common name of every node certificate.</summary>
    public const string NodeCommonName = "node";

    private static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(5);
    private const UnixFileMode PrivateFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode PublicFile = PrivateFile | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    private const UnixFileMode PrivateFolder = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>
    /// Creates a cluster CA in <paramref name="folder"/>: ca.crt and ca.key. Returns both files.
    /// <paramref name="rotate"/>: the folder must hold a CA already; a new key replaces ca.key, and
    /// ca.crt becomes the new CA certificate followed by the old ones that have not expired, so
    /// certificates signed by either are trusted while nodes move to new certificates (remove the
    /// old CA from ca.crt, everywhere, once no certificate of it is in use).
    /// <paramref name="force"/>: replace an existing CA outright (certificates it signed stop being trusted).
    /// </summary>
    /// <exception cref="CertificateFileExistsException">ca.crt or ca.key exists and neither <paramref name="force"/> nor <paramref name="rotate"/> was given.</exception>
    /// <exception cref="CertificateNotFoundException"><paramref name="rotate"/> without an existing ca.crt.</exception>
    /// <exception cref="CertificateInvalidException"><paramref name="rotate"/> and the existing ca.crt cannot be read.</exception>
    /// <exception cref="InvalidCertificateRequestException">A lifetime that is not positive.</exception>
    public static IReadOnlyList<FileInfo> CreateAuthority(string folder, TimeSpan lifetime, bool force = false, bool rotate = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        CheckLifetime(lifetime);
        folder = Path.GetFullPath(folder);
        string certificatePath = Path.Combine(folder, CertificateFileNames.Authority);
        string keyPath = Path.Combine(folder, CertificateFileNames.AuthorityKey);
        var previous = new X509Certificate2Collection();
        if (rotate)
        {
            if (!File.Exists(certificatePath))
                throw new CertificateNotFoundException($"-Rotate needs the current CA in '{folder}', but it has no {CertificateFileNames.Authority}.") { Target = certificatePath };
            previous = TlsIdentity.LoadAuthorities(certificatePath);
        }
        else if (!force)
        {
            RefuseExisting(certificatePath, keyPath);
        }

        var now = DateTimeOffset.UtcNow;
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var name = new X500DistinguishedNameBuilder();
        name.AddOrganizationName("Replication");
        name.AddCommonName($"Replication CA {Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant()}");
        var request = new CertificateRequest(name.Build(), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: true, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        using var authority = request.CreateSelfSigned(now - ClockSkew, now + lifetime);

        var bundle = new StringBuilder(authority.ExportCertificatePem()).Append('\n');
        foreach (var old in previous)
            if (old.NotAfter.ToUniversalTime() > now.UtcDateTime) bundle.Append(old.ExportCertificatePem()).Append('\n');

        EnsureFolder(folder);
        WriteFile(keyPath, key.ExportPkcs8PrivateKeyPem() + "\n", PrivateFile);
        WriteFile(certificatePath, bundle.ToString(), PublicFile);
        return [new FileInfo(certificatePath), new FileInfo(keyPath)];
    }

    /// <summary>
    /// Creates node.crt and node.key in <paramref name="folder"/>, signed by the CA in
    /// <paramref name="authorityFolder"/> (its ca.crt and ca.key; default: <paramref name="folder"/>).
    /// The certificate names <paramref name="hostNames"/> and <paramref name="addresses"/> (the ways
    /// peers and clients dial this node); with neither, localhost, 127.0.0.1 and ::1. When
    /// <paramref name="folder"/> has no ca.crt, the CA's ca.crt is copied there, so the folder is
    /// complete for a node. Returns the files written (certificate, key, and ca.crt if copied).
    /// </summary>
    /// <exception cref="CertificateFileExistsException">node.crt or node.key exists and <paramref name="force"/> is false.</exception>
    /// <exception cref="CertificateNotFoundException">The CA's ca.crt or ca.key is missing.</exception>
    /// <exception cref="CertificateInvalidException">ca.key matches no certificate of ca.crt, the CA has expired, or <paramref name="folder"/>'s
    /// own ca.crt does not trust the signing CA (copy the CA's ca.crt there first: peers must trust a CA before anyone presents its certificates).</exception>
    /// <exception cref="InvalidCertificateRequestException">A host name that is not a DNS name, or a lifetime that is not positive.</exception>
    public static IReadOnlyList<FileInfo> CreateNode(string folder, IReadOnlyList<string>? hostNames = null, IReadOnlyList<IPAddress>? addresses = null,
        string? authorityFolder = null, TimeSpan? lifetime = null, bool force = false)
    {
        var now = DateTimeOffset.UtcNow;
        var span = lifetime ?? DefaultCertificateLifetime;
        CheckLifetime(span);
        hostNames ??= [];
        addresses ??= [];
        if (hostNames.Count == 0 && addresses.Count == 0)
        {
            hostNames = ["localhost"];
            addresses = [IPAddress.Loopback, IPAddress.IPv6Loopback];
        }
        foreach (var host in hostNames)
            if (string.IsNullOrWhiteSpace(host) || Uri.CheckHostName(host) != UriHostNameType.Dns)
                throw new InvalidCertificateRequestException($"'{host}' is not a DNS host name (give IP addresses as addresses).") { Target = host };
        return CreateLeaf(folder, authorityFolder, CertificateRole.Node, NodeCommonName, hostNames, addresses, now - ClockSkew, now + span, force);
    }

    /// <summary>
    /// Creates client.crt and client.key in <paramref name="folder"/> for a client called
    /// <paramref name="name"/> (its common name: it appears in the nodes' logs), signed as for
    /// <see cref="CreateNode"/>, and copies the CA's ca.crt there when missing.
    /// </summary>
    /// <exception cref="CertificateFileExistsException">client.crt or client.key exists and <paramref name="force"/> is false.</exception>
    /// <exception cref="CertificateNotFoundException">The CA's ca.crt or ca.key is missing.</exception>
    /// <exception cref="CertificateInvalidException">As for <see cref="CreateNode"/>.</exception>
    /// <exception cref="InvalidCertificateRequestException">An empty name or one over 64 characters, or a lifetime that is not positive.</exception>
    public static IReadOnlyList<FileInfo> CreateClient(string folder, string name = "client", string? authorityFolder = null, TimeSpan? lifetime = null, bool force = false)
    {
        var now = DateTimeOffset.UtcNow;
        var span = lifetime ?? DefaultCertificateLifetime;
        CheckLifetime(span);
        if (string.IsNullOrWhiteSpace(name) || name.Length > 64)
            throw new InvalidCertificateRequestException($"A client name is 1 to 64 characters; got '{name}'.") { Target = name };
        return CreateLeaf(folder, authorityFolder, CertificateRole.Client, name, [], [], now - ClockSkew, now + span, force);
    }

    /// <summary>
    /// Creates a node or client certificate valid from <paramref name="notBefore"/> to <paramref name="notAfter"/>
    /// (clamped to the CA's validity). Internal so tests can make an expired certificate.
    /// </summary>
    internal static IReadOnlyList<FileInfo> CreateLeaf(string folder, string? authorityFolder, CertificateRole role, string commonName,
        IReadOnlyList<string> hostNames, IReadOnlyList<IPAddress> addresses, DateTimeOffset notBefore, DateTimeOffset notAfter, bool force)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        folder = Path.GetFullPath(folder);
        authorityFolder = Path.GetFullPath(authorityFolder ?? folder);
        string certificatePath = Path.Combine(folder, CertificateFileNames.CertificateFor(role));
        string keyPath = Path.Combine(folder, CertificateFileNames.KeyFor(role));
        string trustPath = Path.Combine(folder, CertificateFileNames.Authority);
        string authorityCertificates = Path.Combine(authorityFolder, CertificateFileNames.Authority);
        if (!force) RefuseExisting(certificatePath, keyPath);

        using var issuer = LoadSigningAuthority(authorityFolder);
        bool copyTrust = !File.Exists(trustPath);
        if (!copyTrust && !TlsIdentity.LoadAuthorities(trustPath).Any(c => c.Thumbprint == issuer.Thumbprint))
            throw new CertificateInvalidException($"{trustPath} does not trust the CA that would sign the new certificate ({CertificateChecks.Describe(issuer)}). "
                + $"Copy {authorityCertificates} there first: every node must trust a CA before any node or client presents a certificate from it.") { Target = trustPath };

        if (notAfter > issuer.NotAfter) notAfter = issuer.NotAfter;
        if (notBefore < issuer.NotBefore) notBefore = issuer.NotBefore;
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var subject = new X500DistinguishedNameBuilder();
        subject.AddOrganizationName("Replication");
        subject.AddCommonName(commonName);
        var request = new CertificateRequest(subject.Build(), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        var usages = new OidCollection { new Oid(CertificateChecks.ClientAuthOid) };
        if (role == CertificateRole.Node) usages.Add(new Oid(CertificateChecks.ServerAuthOid));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(usages, critical: false));
        if (hostNames.Count + addresses.Count > 0)
        {
            var names = new SubjectAlternativeNameBuilder();
            foreach (var host in hostNames) names.AddDnsName(host);
            foreach (var address in addresses) names.AddIpAddress(address);
            request.CertificateExtensions.Add(names.Build(critical: false));
        }
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        byte[] serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F; // a positive INTEGER
        using var certificate = request.Create(issuer, notBefore, notAfter, serial);

        EnsureFolder(folder);
        var written = new List<FileInfo>();
        WriteFile(keyPath, key.ExportPkcs8PrivateKeyPem() + "\n", PrivateFile);
        WriteFile(certificatePath, certificate.ExportCertificatePem() + "\n", PublicFile);
        written.Add(new FileInfo(certificatePath));
        written.Add(new FileInfo(keyPath));
        if (copyTrust)
        {
            WriteFile(trustPath, File.ReadAllText(authorityCertificates), PublicFile);
            written.Add(new FileInfo(trustPath));
        }
        return written;
    }

    /// <summary>The CA certificate of ca.crt that ca.key belongs to, with that key; it must be valid now.</summary>
    private static X509Certificate2 LoadSigningAuthority(string authorityFolder)
    {
        string certificatePath = Path.Combine(authorityFolder, CertificateFileNames.Authority);
        string keyPath = Path.Combine(authorityFolder, CertificateFileNames.AuthorityKey);
        foreach (var path in new[] { certificatePath, keyPath })
            if (!File.Exists(path))
                throw new CertificateNotFoundException($"No CA to sign with: '{authorityFolder}' has no {Path.GetFileName(path)} (create one with New-ReplicationCertificate -CertificateAuthority).") { Target = path };
        var authorities = TlsIdentity.LoadAuthorities(certificatePath);
        string keyPem = File.ReadAllText(keyPath);
        foreach (var authority in authorities)
        {
            X509Certificate2 withKey;
            try { withKey = X509Certificate2.CreateFromPem(authority.ExportCertificatePem(), keyPem); }
            catch (Exception e) when (e is CryptographicException or ArgumentException) { continue; } // not this one's key (or not a key at all: reported below)
            if (withKey.NotAfter.ToUniversalTime() <= DateTime.UtcNow)
            {
                withKey.Dispose();
                throw new CertificateInvalidException($"The CA {CertificateChecks.Describe(authority)} has expired; rotate it (New-ReplicationCertificate -CertificateAuthority -Rotate).") { Target = certificatePath };
            }
            return withKey;
        }
        throw new CertificateInvalidException($"{keyPath} is not the private key of any CA certificate in {certificatePath}.") { Target = keyPath };
    }

    private static void CheckLifetime(TimeSpan lifetime)
    {
        if (lifetime <= TimeSpan.Zero)
            throw new InvalidCertificateRequestException($"A certificate's lifetime must be positive; got {lifetime}.") { Target = lifetime };
    }

    private static void RefuseExisting(params string[] paths)
    {
        foreach (var path in paths)
            if (File.Exists(path))
                throw new CertificateFileExistsException($"{path} exists; nothing was written (use -Force to replace it).") { Target = path };
    }

    private static void EnsureFolder(string folder)
    {
        if (Directory.Exists(folder)) return;
        if (OperatingSystem.IsWindows()) Directory.CreateDirectory(folder);
        else Directory.CreateDirectory(folder, PrivateFolder);
    }

    /// <summary>Writes <paramref name="content"/> to a temporary file created with <paramref name="mode"/> (Unix), then renames it over <paramref name="path"/>.</summary>
    private static void WriteFile(string path, string content, UnixFileMode mode)
    {
        string temporary = Path.Combine(Path.GetDirectoryName(path)!, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = mode;
        try
        {
            using (var stream = new FileStream(temporary, options))
            {
                stream.Write(Encoding.ASCII.GetBytes(content));
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(temporary); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }
}
