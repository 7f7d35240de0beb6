namespace Replication.Engine;

/// <summary>An operation needs a node to be running (a cold backup, a restore from a backup), and it is not.</summary>
public sealed class NodeNotRunningException(int node, string message) : ReplicationException(message)
{
    public override string ErrorId => "NodeNotRunning";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.InvalidState;
    public int Node { get; } = node;
}
