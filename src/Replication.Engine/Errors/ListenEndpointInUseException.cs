namespace Replication.Engine;

/// <summary>The endpoint a node should listen on cannot be bound (another process holds the port, or the address is not local).</summary>
public sealed class ListenEndpointInUseException(string message, Exception? inner = null) : ReplicationException(message, inner)
{
    public override string ErrorId => "ListenEndpointInUse";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.Unavailable;
}
