namespace Replication.Engine.Transport;

/// <summary>
/// A snapshot of a <see cref="TcpTransport"/>'s counters since it was created. Each counter is
/// read atomically, but the snapshot as a whole is not (counters keep moving while it is taken).
/// Immutable.
/// </summary>
/// <param name="FramesSent">Raft frames written to peers.</param>
/// <param name="MessagesSent">Raft messages in those frames.</param>
/// <param name="FramesReceived">Raft frames received and decoded from handshaken peers.</param>
/// <param name="MessagesReceived">Messages handed to the receive callback.</param>
/// <param name="DroppedQueueFull">Outbound messages evicted because a peer's queue was full (the oldest go first).</param>
/// <param name="DroppedDisconnected">Outbound messages dropped because the peer could not be reached or its connection failed mid-write, or the transport stopped with them queued.</param>
/// <param name="DroppedUnroutable">Messages passed to Send whose recipient has no address (or after disposal), and messages too large for one frame.</param>
/// <param name="DroppedMisaddressed">Received messages not addressed to this node, or claiming a sender other than the node that said Hello on that connection.</param>
/// <param name="ConnectionsOpened">Outbound connections established (connected and Hello sent).</param>
/// <param name="ConnectFailures">Outbound connection attempts that failed.</param>
/// <param name="ConnectionsAccepted">Inbound connections that completed the handshake.</param>
/// <param name="ConnectionsRejected">Inbound connections closed for a protocol violation (bad frame, bad Hello, wrong cluster, handshake timeout).</param>
public sealed record TransportStats(
    long FramesSent,
    long MessagesSent,
    long FramesReceived,
    long MessagesReceived,
    long DroppedQueueFull,
    long DroppedDisconnected,
    long DroppedUnroutable,
    long DroppedMisaddressed,
    long ConnectionsOpened,
    long ConnectFailures,
    long ConnectionsAccepted,
    long ConnectionsRejected)
{
    /// <summary>All dropped messages, outbound and inbound.</summary>
    public long MessagesDropped => DroppedQueueFull + DroppedDisconnected + DroppedUnroutable + DroppedMisaddressed;
}
