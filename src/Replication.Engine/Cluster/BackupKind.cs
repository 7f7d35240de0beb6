namespace Replication;

/// <summary>How a backup was taken. Persisted (by name) in backup.json: append-only.</summary>
public enum BackupKind
{
    /// <summary>Online: every shard copied from its leader at a committed index while writes continue.</summary>
    Hot = 0,
    /// <summary>Offline: one node's files, copied while that node was stopped.</summary>
    Cold = 1,
}
