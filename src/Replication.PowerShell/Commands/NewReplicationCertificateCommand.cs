using System.Management.Automation;
using System.Net;
using Replication.Engine;
using Replication.Engine.Security;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Creates a cluster certificate authority, node certificates and client certificates for TLS, as PEM files in a folder.
/// Modelled on cockroach cert create-ca, create-node and create-client. <c>-CertificateAuthority</c> writes ca.crt and
/// ca.key; <c>-Node</c> writes node.crt and node.key, naming the host names and addresses that peers and clients dial
/// (localhost, 127.0.0.1 and ::1 when none are given); <c>-Client</c> writes client.crt and client.key. Node and client
/// certificates are signed by the CA in <c>-CaPath</c> (default: the same folder), and that CA's ca.crt is copied into
/// the folder when it has none, so the folder is complete for a node (ca.crt, node.crt, node.key) or a client (ca.crt,
/// client.crt, client.key); ca.key is never copied. Keys are ECDSA P-256; private keys are PKCS#8 and owner-only
/// (chmod 600) on Unix. Existing files are never overwritten without <c>-Force</c>. <c>-Rotate</c> makes a new CA and
/// keeps the old CA certificates in ca.crt, so certificates of both are trusted while nodes move to new ones.
/// Writes a FileInfo for each file written.
/// </summary>
/// <example>
/// <code>
/// New-ReplicationCertificate -CertificateAuthority -Path ./certs/ca
/// New-ReplicationCertificate -Node -Path ./certs/node1 -CaPath ./certs/ca -IPAddress 10.0.0.11 -HostName db1.example.internal
/// New-ReplicationCertificate -Client -Path ./certs/admin -CaPath ./certs/ca -Name admin
/// </code>
/// Creates a cluster CA, a certificate folder for the node at 10.0.0.11, and one for an administrator's shell; copy each folder (without ca.key) to where it is used.
/// </example>
/// <example>
/// <code>
/// New-ReplicationCertificate -CertificateAuthority -Path ./certs
/// New-ReplicationCertificate -Node -Path ./certs
/// New-ReplicationCertificate -Client -Path ./certs
/// </code>
/// Creates everything a loopback test cluster needs in one folder: the CA, a node certificate for localhost, 127.0.0.1 and ::1, and a client certificate.
/// </example>
/// <example>
/// <code>
/// New-ReplicationCertificate -CertificateAuthority -Path ./certs/ca -Rotate
/// Copy-Item ./certs/ca/ca.crt ./certs/node1/ca.crt
/// New-ReplicationCertificate -Node -Path ./certs/node1 -CaPath ./certs/ca -IPAddress 10.0.0.11 -Force
/// </code>
/// Rotates the CA: every node first receives the bundle of the new and old CA, then a new certificate; running nodes use the new files for new connections without a restart.
/// </example>
/// <seealso cref="StartReplicationNodeCommand"/>
/// <seealso cref="ConnectReplicationClusterCommand"/>
/// <seealso cref="NewReplicationClusterCommand"/>
[Cmdlet(VerbsCommon.New, "ReplicationCertificate", DefaultParameterSetName = NodeSet, SupportsShouldProcess = true)]
[OutputType(typeof(FileInfo))]
public sealed class NewReplicationCertificateCommand : ReplicationCmdlet
{
    /// <summary>Create a cluster certificate authority.</summary>
    public const string AuthoritySet = "CertificateAuthority";
    /// <summary>Create a node certificate.</summary>
    public const string NodeSet = "Node";
    /// <summary>Create a client certificate.</summary>
    public const string ClientSet = "Client";

    /// <summary>Create a cluster certificate authority (ca.crt and ca.key) in -Path.</summary>
    [Parameter(Mandatory = true, ParameterSetName = AuthoritySet)]
    [Alias("CA")]
    public SwitchParameter CertificateAuthority { get; set; }

    /// <summary>Create a node certificate (node.crt and node.key) in -Path, signed by the CA in -CaPath.</summary>
    [Parameter(Mandatory = true, ParameterSetName = NodeSet)]
    public SwitchParameter Node { get; set; }

    /// <summary>Create a client certificate (client.crt and client.key) in -Path, signed by the CA in -CaPath.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ClientSet)]
    public SwitchParameter Client { get; set; }

    /// <summary>The folder to write into; created (owner-only on Unix) when it does not exist.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>The folder of the CA that signs (its ca.crt and ca.key). Default: -Path.</summary>
    [Parameter(ParameterSetName = NodeSet)]
    [Parameter(ParameterSetName = ClientSet)]
    [ValidateNotNullOrEmpty]
    public string? CaPath { get; set; }

    /// <summary>DNS names the node is dialled by (Subject Alternative Names). With neither -HostName nor -IPAddress: localhost, 127.0.0.1 and ::1.</summary>
    [Parameter(ParameterSetName = NodeSet)]
    [ValidateNotNullOrEmpty]
    public string[] HostName { get; set; } = Array.Empty<string>();

    /// <summary>IP addresses the node is dialled at (Subject Alternative Names): the address in its -Listen endpoint. With neither -HostName nor -IPAddress: localhost, 127.0.0.1 and ::1.</summary>
    [Parameter(ParameterSetName = NodeSet)]
    [ValidateNotNullOrEmpty]
    public IPAddress[] IPAddress { get; set; } = Array.Empty<IPAddress>();

    /// <summary>The client's name (the certificate's common name, shown in the nodes' logs). Default: client.</summary>
    [Parameter(ParameterSetName = ClientSet)]
    [ValidateLength(1, 64)]
    public string Name { get; set; } = "client";

    /// <summary>Days the certificate is valid. Default: 3650 for a CA, 1825 for node and client certificates (never beyond the CA's own end).</summary>
    [Parameter]
    [ValidateRange(1, 36500)]
    public int? ValidDays { get; set; }

    /// <summary>With -CertificateAuthority: make a new CA key and certificate, and keep the old CA certificates that have not expired in ca.crt, so both generations are trusted during a rotation.</summary>
    [Parameter(ParameterSetName = AuthoritySet)]
    public SwitchParameter Rotate { get; set; }

    /// <summary>Replace existing certificate and key files. For a CA, certificates signed by the old CA are no longer trusted (use -Rotate to keep them trusted).</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessRecord()
    {
        string folder = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
        string? authority = CaPath is null ? null : SessionState.Path.GetUnresolvedProviderPathFromPSPath(CaPath);
        var lifetime = ValidDays is int days ? TimeSpan.FromDays(days) : (TimeSpan?)null;
        string action = ParameterSetName switch
        {
            AuthoritySet => Rotate ? "Rotate the cluster CA (new ca.key; ca.crt keeps the old CA)" : "Create a cluster CA (ca.crt, ca.key)",
            NodeSet => "Create a node certificate (node.crt, node.key)",
            _ => $"Create a client certificate for '{Name}' (client.crt, client.key)",
        };
        if (!ShouldProcess(folder, action)) return;
        try
        {
            var files = ParameterSetName switch
            {
                AuthoritySet => ClusterCertificates.CreateAuthority(folder, lifetime ?? ClusterCertificates.DefaultAuthorityLifetime, Force, Rotate),
                NodeSet => ClusterCertificates.CreateNode(folder, HostName, IPAddress, authority, lifetime, Force),
                _ => ClusterCertificates.CreateClient(folder, Name, authority, lifetime, Force),
            };
            foreach (var file in files) WriteVerbose($"wrote {file.FullName}");
            WriteObject(files, enumerateCollection: true);
        }
        catch (CertificateFileExistsException e)
        {
            // ResourceExists, as New-Item reports an existing item (the engine's kind maps to InvalidOperation).
            WriteError(new ErrorRecord(e, e.ErrorId, ErrorCategory.ResourceExists, e.Target ?? folder));
        }
        catch (ReplicationException e)
        {
            WriteEngineError(e, e.Target ?? folder);
        }
    }
}
