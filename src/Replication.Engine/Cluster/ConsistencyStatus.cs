namespace Replication;

/// <summary>Verdict of a replica comparison.</summary>
// 64-bit on purpose: PowerShell's ConvertTo-Json writes 64-bit enums by name ("Running"), 32-bit ones as numbers
// (issue 12, item 9). The values are unchanged; the wire and the files carry names.
public enum ConsistencyStatus : long
{
    /// <summary>Every compared replica has the leader's Merkle root at the same applied index.</summary>
    Consistent = 0,
    /// <summary>At least one replica differs; see the divergent ranges.</summary>
    Divergent = 1,
}
