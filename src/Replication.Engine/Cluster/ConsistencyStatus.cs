namespace Replication;

/// <summary>Verdict of a replica comparison.</summary>
public enum ConsistencyStatus
{
    /// <summary>Every compared replica has the leader's Merkle root at the same applied index.</summary>
    Consistent = 0,
    /// <summary>At least one replica differs; see the divergent ranges.</summary>
    Divergent = 1,
}
