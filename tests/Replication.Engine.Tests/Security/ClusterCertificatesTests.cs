using System.Net;
using System.Security.Cryptography.X509Certificates;
using Replication.Engine.Security;
using Xunit;

namespace Replication.Engine.Tests.Security;

/// <summary>
/// Certificate creation round trips (files, permissions, extensions, chains, refusal to overwrite,
/// CA rotation into a bundle) and the checks a certificate folder must pass before a node or client
/// uses it (missing files, unreadable or mismatched files, wrong role, expired, foreign CA, open key).
/// </summary>
public sealed class ClusterCertificatesTests : IDisposable
{
    private readonly TestCertificates _certificates = new();

    public void Dispose() => _certificates.Dispose();

    private static X509Certificate2 Read(string path) => X509Certificate2.CreateFromPem(File.ReadAllText(path));

    private static bool Chains(X509Certificate2 certificate, X509Certificate2Collection authorities)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        return chain.Build(certificate);
    }

    private static string[] Usages(X509Certificate2 certificate) =>
        certificate.Extensions.OfType<X509EnhancedKeyUsageExtension>().Single().EnhancedKeyUsages.Cast<System.Security.Cryptography.Oid>().Select(o => o.Value!).Order().ToArray();

    [Fact]
    public void A_CA_node_and_client_round_trip_through_their_files()
    {
        string ca = _certificates.Folder("new-ca");
        var caFiles = ClusterCertificates.CreateAuthority(ca, TimeSpan.FromDays(10));
        Assert.Equal(["ca.crt", "ca.key"], caFiles.Select(f => f.Name));
        Assert.All(caFiles, f => Assert.True(f.Exists && f.Length > 0));

        var nodeFiles = ClusterCertificates.CreateNode(_certificates.Folder("n1"), ["db1.example.internal", "localhost"], [IPAddress.Parse("10.0.0.11"), IPAddress.Loopback],
            authorityFolder: ca, lifetime: TimeSpan.FromDays(5));
        Assert.Equal(["node.crt", "node.key", "ca.crt"], nodeFiles.Select(f => f.Name)); // ca.crt copied: the folder is complete
        Assert.False(File.Exists(Path.Combine(_certificates.Folder("n1"), "ca.key")));     // the CA key stays in the CA folder
        var clientFiles = ClusterCertificates.CreateClient(_certificates.Folder("c1"), "alice", authorityFolder: ca);
        Assert.Equal(["client.crt", "client.key", "ca.crt"], clientFiles.Select(f => f.Name));

        if (!OperatingSystem.IsWindows())
        {
            foreach (var key in new[] { caFiles[1], nodeFiles[1], clientFiles[1] })
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(key.FullName));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(_certificates.Folder("n1")));
        }
        Assert.Contains("BEGIN PRIVATE KEY", File.ReadAllText(nodeFiles[1].FullName)); // PKCS#8 PEM

        var authority = Read(caFiles[0].FullName);
        var constraints = authority.Extensions.OfType<X509BasicConstraintsExtension>().Single();
        Assert.True(constraints.CertificateAuthority);
        Assert.Equal(0, constraints.PathLengthConstraint);
        Assert.Equal("1.2.840.10045.3.1.7", authority.GetECDsaPublicKey()!.ExportParameters(false).Curve.Oid.Value); // ECDSA P-256

        var node = Read(nodeFiles[0].FullName);
        Assert.Equal("node", node.GetNameInfo(X509NameType.SimpleName, false));
        Assert.Equal(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"], Usages(node));
        Assert.Equal(["db1.example.internal", "localhost", "10.0.0.11", "127.0.0.1"], CertificateChecks.SubjectAlternativeNames(node));
        Assert.True(node.MatchesHostname("10.0.0.11") && node.MatchesHostname("db1.example.internal"));
        Assert.False(node.MatchesHostname("10.0.0.12"));
        Assert.InRange(node.NotAfter - node.NotBefore, TimeSpan.FromDays(5), TimeSpan.FromDays(5) + TimeSpan.FromMinutes(6));
        Assert.Equal(authority.Subject, node.Issuer);

        var client = Read(clientFiles[0].FullName);
        Assert.Equal("alice", client.GetNameInfo(X509NameType.SimpleName, false));
        Assert.Equal(["1.3.6.1.5.5.7.3.2"], Usages(client));
        Assert.Empty(CertificateChecks.SubjectAlternativeNames(client));

        var authorities = new X509Certificate2Collection(authority);
        Assert.True(Chains(node, authorities));
        Assert.True(Chains(client, authorities));
        Assert.False(Chains(node, new X509Certificate2Collection(Read(Path.Combine(_certificates.Authority, "ca.crt"))))); // not under another CA

        // The folders load as a node's and a client's TLS credentials (key matches, role, chain).
        Assert.Equal(CertificateRole.Node, TransportSecurity.Tls(_certificates.Folder("n1"), CertificateRole.Node).Role);
        Assert.Equal(CertificateRole.Client, TransportSecurity.Tls(_certificates.Folder("c1"), CertificateRole.Client).Role);
    }

    [Fact]
    public void A_node_certificate_names_localhost_and_the_loopback_addresses_by_default()
    {
        var node = Read(ClusterCertificates.CreateNode(_certificates.Folder("n"), authorityFolder: _certificates.Authority)[0].FullName);
        Assert.Equal(["localhost", "127.0.0.1", "::1"], CertificateChecks.SubjectAlternativeNames(node));
    }

    [Fact]
    public void Existing_files_are_not_overwritten_without_force_and_nothing_is_written()
    {
        string folder = _certificates.Node("n");
        string before = File.ReadAllText(Path.Combine(folder, "node.crt"));
        var e = Assert.Throws<CertificateFileExistsException>(() => ClusterCertificates.CreateNode(folder, authorityFolder: _certificates.Authority));
        Assert.Equal("CertificateFileExists", e.ErrorId);
        Assert.Equal(Path.Combine(folder, "node.crt"), e.Target);
        Assert.Equal(before, File.ReadAllText(Path.Combine(folder, "node.crt")));
        Assert.Empty(Directory.GetFiles(folder, "*.tmp").Concat(Directory.GetFiles(folder, ".*")));
        Assert.Equal("CertificateFileExists", Assert.Throws<CertificateFileExistsException>(() => ClusterCertificates.CreateAuthority(_certificates.Authority, TimeSpan.FromDays(1))).ErrorId);

        ClusterCertificates.CreateNode(folder, authorityFolder: _certificates.Authority, force: true);
        Assert.NotEqual(before, File.ReadAllText(Path.Combine(folder, "node.crt")));
        TransportSecurity.Tls(folder, CertificateRole.Node); // the replacement is a valid pair
    }

    [Fact]
    public void Rotating_the_CA_keeps_the_old_CA_in_the_bundle_so_both_generations_are_trusted()
    {
        string caFile = Path.Combine(_certificates.Authority, "ca.crt");
        var oldAuthority = Read(caFile);
        string oldNode = _certificates.Node("old");
        string oldKey = File.ReadAllText(Path.Combine(_certificates.Authority, "ca.key"));

        ClusterCertificates.CreateAuthority(_certificates.Authority, TimeSpan.FromDays(30), rotate: true);
        var bundle = TransportSecurity.LoadAuthorities(caFile);
        Assert.Equal(2, bundle.Count);
        Assert.NotEqual(oldAuthority.Thumbprint, bundle[0].Thumbprint);   // the new CA first (it signs from now on)
        Assert.Equal(oldAuthority.Thumbprint, bundle[1].Thumbprint);
        Assert.NotEqual(oldKey, File.ReadAllText(Path.Combine(_certificates.Authority, "ca.key")));

        // A folder holding only the old CA refuses to receive a certificate of the new one...
        var refused = Assert.Throws<CertificateInvalidException>(() => ClusterCertificates.CreateNode(oldNode, authorityFolder: _certificates.Authority, force: true));
        Assert.Contains("does not trust the CA", refused.Message);
        // ...until the bundle is there; then old and new certificates are both valid under it.
        File.Copy(caFile, Path.Combine(oldNode, "ca.crt"), overwrite: true);
        var oldCertificate = Read(Path.Combine(oldNode, "node.crt"));
        string fresh = _certificates.Node("fresh");
        var newCertificate = Read(Path.Combine(fresh, "node.crt"));
        Assert.Equal(bundle[0].Subject, newCertificate.Issuer);
        Assert.True(Chains(oldCertificate, bundle));
        Assert.True(Chains(newCertificate, bundle));
        Assert.False(Chains(newCertificate, new X509Certificate2Collection(oldAuthority)));

        Assert.Equal("CertificateNotFound", Assert.Throws<CertificateNotFoundException>(() =>
            ClusterCertificates.CreateAuthority(_certificates.Folder("none"), TimeSpan.FromDays(1), rotate: true)).ErrorId);
    }

    [Fact]
    public void Bad_requests_are_refused_with_stable_ErrorIds_and_write_nothing()
    {
        string folder = _certificates.Folder("bad");
        Assert.Equal("InvalidCertificateRequest", Assert.Throws<InvalidCertificateRequestException>(() =>
            ClusterCertificates.CreateNode(folder, ["not a host name"], authorityFolder: _certificates.Authority)).ErrorId);
        Assert.Equal("InvalidCertificateRequest", Assert.Throws<InvalidCertificateRequestException>(() =>
            ClusterCertificates.CreateClient(folder, "", authorityFolder: _certificates.Authority)).ErrorId);
        Assert.Equal("InvalidCertificateRequest", Assert.Throws<InvalidCertificateRequestException>(() =>
            ClusterCertificates.CreateAuthority(folder, TimeSpan.Zero)).ErrorId);
        var missing = Assert.Throws<CertificateNotFoundException>(() => ClusterCertificates.CreateNode(folder, authorityFolder: _certificates.Folder("no-ca")));
        Assert.Equal("CertificateNotFound", missing.ErrorId);
        Assert.EndsWith("ca.crt", (string)missing.Target!);
        Assert.False(Directory.Exists(folder));

        // A ca.key that belongs to no certificate of ca.crt.
        using var other = new TestCertificates();
        string mixed = _certificates.Folder("mixed");
        Directory.CreateDirectory(mixed);
        File.Copy(Path.Combine(_certificates.Authority, "ca.crt"), Path.Combine(mixed, "ca.crt"));
        File.Copy(Path.Combine(other.Authority, "ca.key"), Path.Combine(mixed, "ca.key"));
        Assert.Contains("is not the private key of any CA certificate", Assert.Throws<CertificateInvalidException>(() => ClusterCertificates.CreateClient(mixed)).Message);
    }

    public static TheoryData<string, string, string> BadFolders() => new()
    {
        { "no-folder", "CertificateNotFound", "does not exist" },
        { "no-ca", "CertificateNotFound", "has no ca.crt" },
        { "no-key", "CertificateNotFound", "has no node.key" },
        { "ca-not-pem", "CertificateInvalid", "holds no PEM certificate" },
        { "ca-is-a-leaf", "CertificateInvalid", "is not a CA certificate" },
        { "key-of-another-certificate", "CertificateInvalid", "are not a PEM certificate and its private key" },
        { "client-certificate-as-node", "CertificateInvalid", "but a node certificate is needed" },
        { "foreign-ca", "CertificateInvalid", "not signed by a CA in ca.crt" },
        { "expired", "CertificateInvalid", "has expired" },
        { "key-readable-by-others", "CertificateInvalid", "accessible to other users" },
    };

    [Theory]
    [MemberData(nameof(BadFolders))]
    public void A_folder_a_node_cannot_use_is_refused_with_a_stable_ErrorId_naming_the_file(string kind, string errorId, string because)
    {
        if (kind == "key-readable-by-others" && OperatingSystem.IsWindows()) return; // Unix permissions only
        string folder = kind == "no-folder" ? _certificates.Folder("nowhere") : _certificates.Node("n");
        string crt = Path.Combine(folder, "node.crt"), key = Path.Combine(folder, "node.key"), ca = Path.Combine(folder, "ca.crt");
        switch (kind)
        {
            case "no-ca": File.Delete(ca); break;
            case "no-key": File.Delete(key); break;
            case "ca-not-pem": File.WriteAllText(ca, "not a certificate"); break;
            case "ca-is-a-leaf": File.Copy(crt, ca, overwrite: true); break;
            case "key-of-another-certificate":
                File.Copy(Path.Combine(_certificates.Node("other"), "node.key"), key, overwrite: true);
                break;
            case "client-certificate-as-node":
            {
                string client = _certificates.Client("c");
                File.Copy(Path.Combine(client, "client.crt"), crt, overwrite: true);
                File.Copy(Path.Combine(client, "client.key"), key, overwrite: true);
                break;
            }
            case "foreign-ca":
            {
                using var other = new TestCertificates();
                File.Copy(Path.Combine(other.Authority, "ca.crt"), ca, overwrite: true);
                break;
            }
            case "expired":
            {
                var expired = _certificates.ExpiredNodeCertificate();
                File.WriteAllText(crt, expired.ExportCertificatePem());
                File.WriteAllText(key, expired.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
                break;
            }
            case "key-readable-by-others":
                File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
                break;
        }
        var e = Assert.ThrowsAny<ReplicationException>(() => TransportSecurity.Tls(folder, CertificateRole.Node));
        Assert.Equal(errorId, e.ErrorId);
        Assert.Contains(because, e.Message);
        Assert.NotNull(e.Target);
        Assert.DoesNotContain("PRIVATE KEY", e.Message);
    }

    [Fact]
    public void TransportSecurity_describes_its_mode_without_secrets()
    {
        var shared = TransportSecurity.SharedSecret(Replication.Engine.Tests.Transport.WireSamples.SecretA);
        Assert.Equal("shared secret (authenticated, not encrypted)", shared.ToString());
        Assert.False(shared.IsTls);
        Assert.Null(shared.Role);
        var tls = TransportSecurity.Tls(_certificates.Node("n"), CertificateRole.Node);
        Assert.True(tls.IsTls);
        Assert.Equal(CertificateRole.Node, tls.Role);
        Assert.Equal(_certificates.Folder("n"), tls.CertificateFolder);
        Assert.StartsWith("TLS 1.3 (node certificate from ", tls.ToString());
    }
}
