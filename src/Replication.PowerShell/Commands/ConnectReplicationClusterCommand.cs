using System.Management.Automation;
using System.Security;
using Replication.Engine;
using Replication.Engine.Client;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Connects this session to a running cluster over the network and makes it the current cluster.
/// It authenticates with the cluster secret (an HMAC challenge in both directions; the secret never
/// travels), reads the cluster's identity, and registers it in this session (Mode Remote). Every key, node and leader
/// cmdlet then works through it; requests reaching a follower are routed to the shard's leader.
/// If the connected node dies, the next request fails over to another known endpoint.
/// </summary>
/// <example>
/// <code>
/// $secret = Read-Host -AsSecureString 'Cluster secret'
/// Connect-ReplicationCluster -Endpoint 127.0.0.1:7101, 127.0.0.1:7102 -ClusterSecret $secret
/// Set-ReplicationKey -Key a -Value 1
/// </code>
/// Connects through the first node that answers (keeping the other for failover) and writes a key; any node accepts it and forwards it to the shard's leader.
/// </example>
/// <example>
/// <code>Connect-ReplicationCluster -Endpoint 127.0.0.1:41001 -Credential (Get-Credential replication) -Name prod-remote</code>
/// Uses a credential's password as the cluster secret and registers the cluster in this session as prod-remote.
/// </example>
/// <seealso cref="StartReplicationNodeCommand"/>
[Cmdlet(VerbsCommunications.Connect, "ReplicationCluster", DefaultParameterSetName = SecretSet)]
[OutputType(typeof(ReplicationCluster))]
public sealed class ConnectReplicationClusterCommand : ReplicationCmdlet
{
    public const string SecretSet = "ClusterSecret";
    public const string CredentialSet = "Credential";
    public const string CertificateSet = "Certificate";

    /// <summary>One or more node endpoints, host:port. The first that answers is used; the others (and every node the cluster reports) are kept for failover.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string[] Endpoint { get; set; } = Array.Empty<string>();

    /// <summary>The cluster secret (New-ReplicationCluster -ClusterSecret / Start-ReplicationNode -ClusterSecret).</summary>
    [Parameter(Mandatory = true, ParameterSetName = SecretSet)]
    public SecureString? ClusterSecret { get; set; }

    /// <summary>Alternative to -ClusterSecret: the credential's password is the cluster secret (the user name is ignored).</summary>
    [Parameter(Mandatory = true, ParameterSetName = CredentialSet)]
    [Credential]
    public PSCredential? Credential { get; set; }

    /// <summary>A folder with the cluster CA (ca.crt) and a client certificate (client.crt, client.key; New-ReplicationCertificate -Client):
    /// the connection is then TLS 1.3, mutual, to nodes started with -CertificatePath.</summary>
    [Parameter(Mandatory = true, ParameterSetName = CertificateSet)]
    [ValidateNotNullOrEmpty]
    public string? CertificatePath { get; set; }

    /// <summary>The name this session knows the cluster by. Default: the cluster's own name.</summary>
    [Parameter]
    [ValidatePattern("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    public string? Name { get; set; }

    protected override void EndProcessing()
    {
        var security = SecurityOptions.Resolve(this, ParameterSetName == CredentialSet ? Credential!.Password : ClusterSecret, CertificatePath, Engine.Security.CertificateRole.Client);
        ClusterClient engine;
        try
        {
            WriteVerbose($"Connecting to {string.Join(", ", Endpoint)}{(security.IsTls ? " over TLS" : "")}.");
            engine = Await(ClusterClient.ConnectAsync(Endpoint, security, Name, cancellationToken: StopToken));
        }
        catch (ReplicationException e)
        {
            ThrowEngineError(e, Endpoint.Length == 1 ? Endpoint[0] : Endpoint);
            return;
        }
        if (!ClusterRegistry.TryReserve(engine.Name))
        {
            Await(engine.DisposeAsync().AsTask());
            ThrowTerminatingError(NewErrorRecord(ErrorIds.ClusterNameInUse, ErrorCategory.ResourceExists,
                $"A cluster named '{engine.Name}' already exists in this session. Pass -Name to connect under another name.", engine.Name));
        }
        var cluster = new ReplicationCluster(engine);
        ClusterRegistry.Register(cluster);
        WriteObject(cluster);
    }
}
