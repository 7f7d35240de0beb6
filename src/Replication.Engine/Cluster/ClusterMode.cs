namespace Replication;

/// <summary>Where a cluster's nodes run, as seen from this process.</summary>
public enum ClusterMode
{
    /// <summary>Every node runs inside this process (New-ReplicationCluster).</summary>
    Embedded = 0,
    /// <summary>Nodes run elsewhere; this process is a client (Connect-ReplicationCluster).</summary>
    Remote = 1,
    /// <summary>This process runs one node of a multi-process cluster (Start-ReplicationNode -Path); the others run elsewhere.</summary>
    Process = 2,
}
