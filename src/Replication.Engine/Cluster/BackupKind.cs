namespace Replication;

/// <summary>How a backup was taken. Persisted (by name) in backup.json: append-only.</summary>
// 64-bit on purpose: PowerShell's ConvertTo-Json writes 64-bit enums by name ("Running"), 32-bit ones as numbers
// (issue 12, item 9). The values are unchanged; the wire and the files carry names.
public enum BackupKind : long
{
    /// <summary>Online: every shard copied from its leader at a committed index while writes continue.</summary>
    Hot = 0,
    /// <summary>Offline: one node's files, copied while that node was stopped.</summary>
    Cold = 1,
}
