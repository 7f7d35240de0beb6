namespace Replication.Engine;

/// <summary>The operation needs the cluster's nodes in this process (e.g. removing a cluster, starting a
/// node whose host process is elsewhere); it cannot be done through a remote connection.</summary>
public sealed class NotSupportedRemotelyException(string message) : ReplicationException(message)
{
    public override string ErrorId => "NotSupportedRemotely";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.InvalidState;
}
