namespace Replication.PowerShell;

/// <summary>
/// ErrorIds raised by the PowerShell layer itself. Engine errors keep the engine's
/// <see cref="Replication.Engine.ReplicationException.ErrorId"/>. Stable: tests and runbooks match on them.
/// </summary>
public static class ErrorIds
{
    /// <summary>No -Cluster was given and no cluster was created or connected in this session.</summary>
    public const string NoCluster = "NoCluster";
    /// <summary>-Cluster named a cluster this session does not know (or one already removed).</summary>
    public const string ClusterNotFound = "ClusterNotFound";
    /// <summary>-Cluster was neither a ReplicationCluster, a name, nor an object with a Cluster property.</summary>
    public const string InvalidClusterArgument = "InvalidClusterArgument";
    /// <summary>New-ReplicationCluster -Name is already used by a cluster of this session.</summary>
    public const string ClusterNameInUse = "ClusterNameInUse";
    /// <summary>Get-ReplicationKey -Key found no such key.</summary>
    public const string KeyNotFound = "KeyNotFound";
    /// <summary>-Timeout was zero or negative.</summary>
    public const string InvalidTimeout = "InvalidTimeout";
    /// <summary>The operation needs the nodes in this process (Remove-ReplicationCluster on a remote cluster); same id as the engine's.</summary>
    public const string NotSupportedRemotely = "NotSupportedRemotely";
    /// <summary>Disconnect-ReplicationCluster on an embedded cluster (nothing to disconnect).</summary>
    public const string NotSupportedEmbedded = "NotSupportedEmbedded";
    /// <summary>Backup-ReplicationNode without -Cold: node backups are cold only.</summary>
    public const string ColdRequired = "ColdRequired";
}
