namespace Replication.Engine.Storage;

/// <summary>Kind of a key-value operation. Persisted in Raft log entries: values are append-only, never renumbered.</summary>
public enum KvOpType : byte
{
    /// <summary>Create or replace a key's value.</summary>
    Put = 1,

    /// <summary>Remove a key.</summary>
    Delete = 2,

    /// <summary>Set a key's value AND version exactly (loading a backup into a cluster): <see cref="KvOp.Version"/> is required.</summary>
    Restore = 3,
}
