namespace Replication;

/// <summary>How fresh a read must be.</summary>
public enum ReadConsistency
{
    /// <summary>Reflects every write acknowledged before the read began (ReadIndex through the leader).</summary>
    Linearizable = 0,
    /// <summary>Served by a leader holding a valid lease, without a quorum round trip.</summary>
    Lease = 1,
    /// <summary>Served by any replica from its applied state; may lag.</summary>
    Stale = 2,
}
