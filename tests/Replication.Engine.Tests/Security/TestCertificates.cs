using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Replication.Engine.Security;

namespace Replication.Engine.Tests.Security;

/// <summary>
/// A throw-away cluster CA and certificate folders under the temp directory, made with the product's
/// own <see cref="ClusterCertificates"/>. Each test makes its own (key generation takes milliseconds).
/// </summary>
internal sealed class TestCertificates : IDisposable
{
    public TestCertificates()
    {
        Root = Path.Combine(Path.GetTempPath(), "repl-certs-" + Guid.NewGuid().ToString("N")[..10]);
        ClusterCertificates.CreateAuthority(Authority, TimeSpan.FromDays(30));
    }

    /// <summary>The temporary folder holding every folder below.</summary>
    public string Root { get; }

    /// <summary>The CA folder: ca.crt and ca.key.</summary>
    public string Authority => Path.Combine(Root, "ca");

    public string Folder(string name) => Path.Combine(Root, name);

    /// <summary>A node folder (ca.crt, node.crt, node.key) signed by this CA, naming localhost, 127.0.0.1 and ::1 unless told otherwise.</summary>
    public string Node(string name, IReadOnlyList<IPAddress>? addresses = null)
    {
        ClusterCertificates.CreateNode(Folder(name), addresses: addresses, authorityFolder: Authority);
        return Folder(name);
    }

    /// <summary>A client folder (ca.crt, client.crt, client.key) signed by this CA.</summary>
    public string Client(string name)
    {
        ClusterCertificates.CreateClient(Folder(name), name, authorityFolder: Authority);
        return Folder(name);
    }

    public TransportSecurity NodeSecurity(string name) => TransportSecurity.Tls(Node(name), CertificateRole.Node);

    public TransportSecurity ClientSecurity(string name) => TransportSecurity.Tls(Client(name), CertificateRole.Client);

    /// <summary>A node certificate signed by this CA that expired two minutes ago (its validity starts with the CA's, 5 minutes ago), with its key.</summary>
    public X509Certificate2 ExpiredNodeCertificate()
    {
        string folder = Folder("expired-" + Guid.NewGuid().ToString("N")[..6]);
        var now = DateTimeOffset.UtcNow;
        ClusterCertificates.CreateLeaf(folder, Authority, CertificateRole.Node, "node", ["localhost"], [IPAddress.Loopback], now.AddDays(-3), now.AddMinutes(-2), force: false);
        return X509Certificate2.CreateFromPemFile(Path.Combine(folder, "node.crt"), Path.Combine(folder, "node.key"));
    }

    /// <summary>A self-signed certificate with a node's usages, signed by no cluster CA.</summary>
    public static X509Certificate2 SelfSignedNodeCertificate()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=node", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(new OidCollection { new("1.3.6.1.5.5.7.3.1"), new("1.3.6.1.5.5.7.3.2") }, false));
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
    }

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); }
        catch (IOException) { }
    }
}
