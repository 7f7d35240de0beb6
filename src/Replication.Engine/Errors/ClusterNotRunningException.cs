namespace Replication.Engine;

/// <summary>The cluster was removed (or is shutting down), or the node serving the request is stopping; nothing can be done with it.</summary>
public sealed class ClusterNotRunningException : ReplicationException
{
    public ClusterNotRunningException(string cluster) : base($"Cluster '{cluster}' is not running; it was removed.") { }

    internal ClusterNotRunningException(string message, bool received) : base(message) => _ = received;

    public override string ErrorId => "ClusterNotRunning";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.InvalidState;
}
