namespace Replication.Engine.Security;

/// <summary>
/// What a certificate of the cluster CA entitles its holder to (docs/wire-protocol.md, "TLS").
/// The role is read from the certificate's Extended Key Usage: a node certificate carries both
/// TLS server and TLS client authentication (a node listens, and dials its peers), a client
/// certificate carries TLS client authentication only. So a client certificate can never be
/// presented by a listener, and a listener refuses it on a node-to-node connection.
/// Append-only values.
/// </summary>
public enum CertificateRole
{
    /// <summary>A node: serverAuth and clientAuth. Files node.crt and node.key.</summary>
    Node = 1,

    /// <summary>A client (Connect-ReplicationCluster): clientAuth only. Files client.crt and client.key.</summary>
    Client = 2,
}
