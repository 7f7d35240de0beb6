namespace Replication;

/// <summary>Run state of a node as seen by the cluster host.</summary>
public enum NodeState
{
    Running = 0,
    Stopped = 1,
    Unreachable = 2,
}
