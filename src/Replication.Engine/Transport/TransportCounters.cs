namespace Replication.Engine.Transport;

/// <summary>
/// The live counters behind <see cref="TransportStats"/>. Fields are updated with
/// <see cref="Interlocked"/> from any thread; <see cref="Snapshot"/> reads each atomically.
/// </summary>
internal sealed class TransportCounters
{
    public long FramesSent, MessagesSent, FramesReceived, MessagesReceived;
    public long DroppedQueueFull, DroppedDisconnected, DroppedUnroutable, DroppedMisaddressed;
    public long ConnectionsOpened, ConnectFailures, ConnectionsAccepted, ConnectionsRejected;

    public TransportStats Snapshot() => new(
        Interlocked.Read(ref FramesSent),
        Interlocked.Read(ref MessagesSent),
        Interlocked.Read(ref FramesReceived),
        Interlocked.Read(ref MessagesReceived),
        Interlocked.Read(ref DroppedQueueFull),
        Interlocked.Read(ref DroppedDisconnected),
        Interlocked.Read(ref DroppedUnroutable),
        Interlocked.Read(ref DroppedMisaddressed),
        Interlocked.Read(ref ConnectionsOpened),
        Interlocked.Read(ref ConnectFailures),
        Interlocked.Read(ref ConnectionsAccepted),
        Interlocked.Read(ref ConnectionsRejected));
}
