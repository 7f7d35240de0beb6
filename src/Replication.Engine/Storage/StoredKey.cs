namespace Replication.Engine.Storage;

/// <summary>
/// A key as stored in a shard's state machine: its value, its version (1 on creation, +1 on
/// every put) and the Raft index of the entry that last wrote it. Immutable.
/// </summary>
public sealed record StoredKey(string Key, string Value, long Version, long ModifiedIndex);
