using System.Net;
using System.Threading.Channels;
using Replication.Engine.Raft;
using Replication.Engine.Security;

namespace Replication.Engine.Transport;

/// <summary>
/// Everything sent to one peer: a bounded queue, one lazily dialled connection, and the loop
/// that drains the queue into frames. Thread-safe: <see cref="Enqueue"/>, <see cref="UpdateEndPoint"/>
/// and <see cref="Stop"/> may be called from any thread; only the loop touches the connection's writer.
/// <para>
/// Queue policy: capacity <see cref="TcpTransport.PeerQueueCapacity"/>, and when full the OLDEST
/// message is dropped. The queue only fills when the peer is slow or unreachable, and then the
/// oldest messages are the stalest (older terms, superseded commit indexes, heartbeats whose
/// ReadIndex round has timed out); Raft recovers any lost message by retrying. Enqueueing never
/// blocks, so a dead peer cannot stall the Raft loop.
/// </para>
/// <para>
/// Batching: each pass takes everything queued (up to about <see cref="TargetFrameBytes"/>) into
/// one frame, so a burst to a peer costs one write whatever the number of groups in it.
/// </para>
/// <para>
/// Failure: when the connection cannot be made, what is queued is dropped and counted and the
/// loop waits a backoff that doubles from <see cref="MinBackoff"/> to <see cref="MaxBackoff"/>
/// (reset on success) before the next attempt, which is only made when there is something to send.
/// A write that fails drops that frame's messages and closes the connection.
/// </para>
/// </summary>
internal sealed class PeerSender
{
    internal static readonly TimeSpan MinBackoff = TimeSpan.FromMilliseconds(50);
    internal static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(1);
    internal static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(3); // connect plus the handshake (two round trips with TLS)
    internal const int TargetFrameBytes = 1024 * 1024;

    private readonly int _peerId;
    private readonly HelloFrame _hello;
    private readonly TransportSecurity _security;
    private readonly TransportCounters _counters;
    private readonly Action<string> _log;
    private readonly Channel<RaftMessage> _queue;
    private readonly CancellationTokenSource _stop = new();
    private volatile IPEndPoint _endPoint;
    private volatile OutboundConnection? _connection;

    public PeerSender(int peerId, IPEndPoint endPoint, HelloFrame hello, TransportSecurity security, TransportCounters counters, Action<string> log)
    {
        _security = security;
        _peerId = peerId;
        _endPoint = endPoint;
        _hello = hello;
        _counters = counters;
        _log = log;
        _queue = Channel.CreateBounded<RaftMessage>(
            new BoundedChannelOptions(TcpTransport.PeerQueueCapacity)
            {
                FullMode = BoundedChannelFullMode.DropOldest,
                SingleReader = true,
                SingleWriter = false,
            },
            _ => Interlocked.Increment(ref _counters.DroppedQueueFull));
        Loop = Task.Run(RunAsync);
    }

    public IPEndPoint EndPoint => _endPoint;

    /// <summary>Completes when the loop has ended after <see cref="Stop"/>. Never faults.</summary>
    public Task Loop { get; }

    /// <summary>Queues a message; never blocks. After <see cref="Stop"/> the message is dropped and counted.</summary>
    public void Enqueue(RaftMessage message)
    {
        if (!_queue.Writer.TryWrite(message))
            Interlocked.Increment(ref _counters.DroppedUnroutable);
    }

    /// <summary>Points the peer at a new address: the current connection is closed and the next frame dials the new one. Queued messages are kept.</summary>
    public void UpdateEndPoint(IPEndPoint endPoint)
    {
        _endPoint = endPoint;
        _connection?.Dispose();
    }

    /// <summary>Stops the loop and closes the connection without waiting; await <see cref="Loop"/> to know it has ended.</summary>
    public void Stop()
    {
        _queue.Writer.TryComplete();
        try { _stop.Cancel(); } catch (ObjectDisposedException) { }
        _connection?.Dispose();
    }

    private async Task RunAsync()
    {
        var ct = _stop.Token;
        var reader = _queue.Reader;
        var batch = new List<RaftMessage>();
        RaftMessage? carried = null; // taken from the queue but did not fit in the previous frame
        var backoff = MinBackoff;
        int failedAttempts = 0;
        try
        {
            while (carried is not null || await reader.WaitToReadAsync(ct).ConfigureAwait(false))
            {
                var connection = _connection;
                if (connection is null || connection.IsClosed || !connection.EndPoint.Equals(_endPoint))
                {
                    connection?.Dispose();
                    _connection = null;
                    var endPoint = _endPoint;
                    try
                    {
                        connection = await OutboundConnection.ConnectAsync(endPoint, _hello, _security, _log, ConnectTimeout, ct).ConfigureAwait(false);
                    }
                    catch (Exception e) when (!ct.IsCancellationRequested)
                    {
                        Interlocked.Increment(ref _counters.ConnectFailures);
                        if (failedAttempts++ == 0) _log($"cannot reach peer {_peerId} at {endPoint}: {e.Message}; dropping its messages and retrying with backoff");
                        DropQueued(ref carried);
                        await Task.Delay(backoff, ct).ConfigureAwait(false);
                        backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
                        continue;
                    }
                    _connection = connection;
                    if (!endPoint.Equals(_endPoint)) connection.Dispose(); // moved while dialling: the write below fails, the next pass dials the new address
                    Interlocked.Increment(ref _counters.ConnectionsOpened);
                    _log($"connected to peer {_peerId} at {endPoint}{(failedAttempts > 0 ? $" after {failedAttempts} failed attempts" : "")}");
                    backoff = MinBackoff;
                    failedAttempts = 0;
                }

                FillBatch(batch, ref carried);
                if (batch.Count == 0) continue;
                try
                {
                    await connection.Writer.WriteRaftAsync(batch, ct).ConfigureAwait(false);
                    Interlocked.Increment(ref _counters.FramesSent);
                    Interlocked.Add(ref _counters.MessagesSent, batch.Count);
                }
                catch (Exception e) when (!ct.IsCancellationRequested)
                {
                    Interlocked.Add(ref _counters.DroppedDisconnected, batch.Count);
                    _log($"connection to peer {_peerId} at {connection.EndPoint} lost: {e.Message}");
                    connection.Dispose();
                }
                batch.Clear();
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Stopped.
        }
        catch (Exception e)
        {
            // A bug, not a network failure: report it rather than let the task fault unobserved.
            _log($"sender for peer {_peerId} failed: {e}");
        }
        finally
        {
            _connection?.Dispose();
            _queue.Writer.TryComplete();
            Interlocked.Add(ref _counters.DroppedDisconnected, batch.Count);
            DropQueued(ref carried);
            _stop.Dispose();
        }
    }

    /// <summary>Moves queued messages into <paramref name="batch"/> until the queue is empty or the frame reaches its target size.</summary>
    private void FillBatch(List<RaftMessage> batch, ref RaftMessage? carried)
    {
        long size = 4; // batch count
        while (size < TargetFrameBytes)
        {
            RaftMessage? message = carried;
            carried = null;
            if (message is null && !_queue.Reader.TryRead(out message)) break;
            int messageSize = RaftMessageCodec.GetEncodedSize(message);
            if (4L + messageSize > FrameCodec.MaxPayloadSize)
            {
                Interlocked.Increment(ref _counters.DroppedUnroutable);
                _log($"dropping {message}: {messageSize} bytes does not fit in one frame");
                continue;
            }
            if (size + messageSize > FrameCodec.MaxPayloadSize)
            {
                carried = message;
                break;
            }
            batch.Add(message);
            size += messageSize;
        }
    }

    private void DropQueued(ref RaftMessage? carried)
    {
        long dropped = carried is null ? 0 : 1;
        carried = null;
        while (_queue.Reader.TryRead(out _)) dropped++;
        if (dropped > 0) Interlocked.Add(ref _counters.DroppedDisconnected, dropped);
    }
}
