namespace Replication.Engine.Transport;

/// <summary>
/// A peer sent bytes that violate the wire protocol (docs/wire-protocol.md). Every decoder in
/// this folder reports malformed input with this type and nothing else, so a connection
/// handler can catch exactly it, close the one offending connection, log <see cref="Reason"/>
/// and go on serving everyone else.
/// </summary>
public sealed class ProtocolException(ProtocolErrorReason reason, string message)
    : ReplicationException($"Protocol violation ({reason}): {message}")
{
    public override string ErrorId => "ProtocolViolation";

    /// <summary>Wire input failed a check, like stored data failing one.</summary>
    public override ReplicationErrorKind Kind => ReplicationErrorKind.Corrupt;

    /// <summary>The kind of violation.</summary>
    public ProtocolErrorReason Reason { get; } = reason;
}
