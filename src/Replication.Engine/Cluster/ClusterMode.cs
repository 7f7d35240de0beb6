namespace Replication;

/// <summary>Where a cluster's nodes run, as seen from this process.</summary>
// 64-bit on purpose: PowerShell's ConvertTo-Json writes 64-bit enums by name ("Running"), 32-bit ones as numbers
// (issue 12, item 9). The values are unchanged; the wire and the files carry names.
public enum ClusterMode : long
{
    /// <summary>Every node runs inside this process (New-ReplicationCluster).</summary>
    Embedded = 0,
    /// <summary>Nodes run elsewhere; this process is a client (Connect-ReplicationCluster).</summary>
    Remote = 1,
    /// <summary>This process runs one node of a multi-process cluster (Start-ReplicationNode -Path); the others run elsewhere.</summary>
    Process = 2,
}
