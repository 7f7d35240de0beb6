namespace Replication;

/// <summary>Run state of a node as seen by the cluster host.</summary>
// 64-bit on purpose: PowerShell's ConvertTo-Json writes 64-bit enums by name ("Running"), 32-bit ones as numbers
// (issue 12, item 9). The values are unchanged; the wire and the files carry names.
public enum NodeState : long
{
    Running = 0,
    Stopped = 1,
    Unreachable = 2,
}
