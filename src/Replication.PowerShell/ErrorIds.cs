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
    /// <summary>A piped row's Cluster property names another cluster than the current one, and no -Cluster says which to use.</summary>
    public const string ClusterMismatch = "ClusterMismatch";
    /// <summary>A conditional write (-ExpectedVersion) with -WriteConcern Leader: its condition is decided only when it is applied.</summary>
    public const string InvalidWriteConcern = "InvalidWriteConcern";
    /// <summary>-Value is not text and has no culture-invariant text form (a hashtable, an array, a custom object).</summary>
    public const string ValueNotText = "ValueNotText";
    /// <summary>A piped object that is neither text nor has the property a parameter needs (a cluster piped into -Key).</summary>
    public const string InvalidPipelineInput = "InvalidPipelineInput";
    /// <summary>Export-ReplicationReport -NoClobber and the file exists.</summary>
    public const string ReportFileExists = "ReportFileExists";

    /// <summary>Invoke-ReplicationFailover -AllowDataLoss while a majority of the shard's voters answers: nothing forced
    /// (the engine's id).</summary>
    public const string QuorumAvailable = Replication.Engine.Cluster.ClusterNode.QuorumAvailable;
    /// <summary>Invoke-ReplicationFailover -AllowDataLoss: no node that answers holds a replica of the shard (the engine's id).</summary>
    public const string NoSurvivor = Replication.Engine.Cluster.ClusterNode.NoSurvivor;
    /// <summary>Invoke-ReplicationFailover -AllowDataLoss: the survivor kept changing (it led again, its configuration
    /// moved) until the timeout; nothing rewritten (the engine's id).</summary>
    public const string ForcedRecoveryConflict = Replication.Engine.Cluster.ClusterNode.ForcedRecoveryConflict;
    /// <summary>A change that the metadata group must record (a node added, removed, suspended or moved, a shard placed
    /// or split) while that group has no leader and most of its voters are down: refused after a few seconds instead of
    /// retried to the timeout (the engine's id).</summary>
    public const string MetadataQuorumLost = Replication.Engine.Cluster.ClusterNode.MetadataQuorumLost;
}
