namespace Replication.Engine;

/// <summary>None of a remote cluster's known endpoints could be connected to (and authenticated with).</summary>
public sealed class EndpointUnreachableException(string message) : ReplicationException(message)
{
    public override string ErrorId => "EndpointUnreachable";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.Unavailable;
}
