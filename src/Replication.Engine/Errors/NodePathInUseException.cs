namespace Replication.Engine;

/// <summary>Start-ReplicationNode -Path names a folder that already holds a node of another cluster (or an embedded cluster).</summary>
public sealed class NodePathInUseException(string message) : ReplicationException(message)
{
    public override string ErrorId => "NodePathInUse";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.InvalidState;
}
