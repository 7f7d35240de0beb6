namespace Replication.Engine;

/// <summary>The cluster was removed (or is shutting down); nothing can be done with it.</summary>
public sealed class ClusterNotRunningException(string cluster) : ReplicationException($"Cluster '{cluster}' is not running; it was removed.")
{
    public override string ErrorId => "ClusterNotRunning";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.InvalidState;
}
