namespace Replication;

/// <summary>How a shard's leadership moved (ReplicationFailover.Kind).</summary>
// 64-bit on purpose: PowerShell's ConvertTo-Json writes 64-bit enums by name (issue 12, item 9).
public enum FailoverKind : long
{
    /// <summary>A switchover by leader transfer to a caught-up voter: nothing acknowledged is lost.</summary>
    Planned = 0,
    /// <summary>An election after the leader was lost.</summary>
    Automatic = 1,
    /// <summary>A forced recovery after a permanent loss of quorum: what the lost majority alone had is gone.</summary>
    Forced = 2,
}
