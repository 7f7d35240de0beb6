namespace Replication;

/// <summary>The faults a fault drill injects (<see cref="FaultDrill"/>); combine with |.</summary>
[Flags]
public enum DrillFault : long
{
    None = 0,
    /// <summary>A node dies as in a crash (SIGKILL of a node process; Stop-ReplicationNode -Kill of an embedded node) and is started again from its files.</summary>
    Kill = 1,
    /// <summary>A node is frozen and resumed (SIGSTOP/SIGCONT of a process; an embedded node's loop is held): time passes, messages queue up.</summary>
    Pause = 2,
    /// <summary>A node's Raft traffic to and from every other node is dropped, both ways, then let through again.</summary>
    Partition = 4,
    /// <summary>Every log write of a node is delayed (20-150 ms) for a while, as a slow disk or fsync would.</summary>
    SlowDisk = 8,
    All = Kill | Pause | Partition | SlowDisk,
}
