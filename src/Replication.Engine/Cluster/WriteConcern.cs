namespace Replication;

/// <summary>When a write is acknowledged.</summary>
public enum WriteConcern
{
    /// <summary>Once a quorum of voters has the entry durably and it is applied on the leader (default).</summary>
    Majority = 0,
    /// <summary>Once every voter has applied it.</summary>
    All = 1,
    /// <summary>Once the leader has appended it durably. May be lost if the leader fails before a quorum has it.</summary>
    Leader = 2,
}
