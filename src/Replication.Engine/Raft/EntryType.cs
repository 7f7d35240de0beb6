namespace Replication.Engine.Raft;

/// <summary>Kind of a Raft log entry. Persisted and sent on the wire: values are append-only.</summary>
public enum EntryType : byte
{
    /// <summary>Application command (a state-machine command), or empty: a leader's no-op for its term.</summary>
    Normal = 0,

    /// <summary>A membership change (reserved for the membership-change work).</summary>
    ConfChange = 1,
}
