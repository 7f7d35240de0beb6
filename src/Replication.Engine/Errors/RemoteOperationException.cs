namespace Replication.Engine;

/// <summary>
/// An error reported through a remote connection: either the server's engine error passed through
/// with its own <see cref="ErrorId"/>, <see cref="ReplicationException.Kind"/> and message, or a
/// client-side condition of the connection itself (<see cref="OutcomeUnknown"/>, <see cref="ConnectionLost"/>,
/// <see cref="RequestTimeout"/>).
/// </summary>
public sealed class RemoteOperationException(string errorId, ReplicationErrorKind kind, string message) : ReplicationException(message)
{
    /// <summary>A write was sent but its connection broke (or its answer timed out) before the answer came:
    /// it may or may not have been applied. Not retried automatically, because a write is not idempotent.</summary>
    public const string OutcomeUnknown = "OutcomeUnknown";
    /// <summary>A multi-step request (a scan in progress) lost its connection and cannot resume on another.</summary>
    public const string ConnectionLost = "ConnectionLost";
    /// <summary>The server did not answer within the request's timeout (plus a margin for the network).</summary>
    public const string RequestTimeout = "RequestTimeout";
    /// <summary>The node the request reached is stopping (or its storage failed) and did nothing with it: a client tries another node.</summary>
    public const string NodeStopping = "NodeStopping";

    public override string ErrorId { get; } = errorId;
    public override ReplicationErrorKind Kind { get; } = kind;
}
