using System.Net;
using Replication.Engine.Raft;
using Replication.Engine.Security;

namespace Replication.Engine.Transport;

/// <summary>
/// Everything sent to one peer: a bounded queue, one lazily dialled connection, and the thread
/// that drains the queue into frames. Thread-safe: <see cref="Enqueue"/>, <see cref="UpdateEndPoint"/>
/// and <see cref="Stop"/> may be called from any thread; the connection's writer is used by the sender thread, or by a
/// caller of <see cref="TrySendNow"/> while that thread waits with nothing to send, never by both at once.
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
/// Threads: the sender has a thread of its own that blocks on the queue and writes synchronously, rather
/// than an async loop on the thread pool: a frame then costs one wake-up of that thread and one send, not a
/// thread-pool hop (whose workers spin with sched_yield before sleeping: most of an idle node's CPU, bench
/// finding). A node has one sender per peer, so a few threads. A small message that would wait behind nothing can be
/// written on the caller's thread instead (<see cref="TrySendNow"/>: the node loop's liveness signals, and each pass's
/// appends and answers), which saves even that wake-up.
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
    private readonly string _lane; // "" for the Raft connection; named in the log otherwise
    private readonly Queue<RaftMessage> _queue = new(); // guarded by itself
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _loop = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _stopped; // guarded by _queue
    private bool _idle; // guarded by _queue: the sender thread waits with nothing taken and nothing queued
    private bool _writingNow; // guarded by _queue: a caller of TrySendNow is writing; the sender thread waits meanwhile
    private volatile IPEndPoint _endPoint;
    private volatile OutboundConnection? _connection;

    /// <param name="lane">Null for the peer's Raft connection; a name ("snapshot") for another connection to the same peer,
    /// which the log and the thread's name then carry (TcpTransport.Send says which messages take which).</param>
    public PeerSender(int peerId, IPEndPoint endPoint, HelloFrame hello, TransportSecurity security, TransportCounters counters, Action<string> log, string? lane = null)
    {
        _lane = lane is null ? "" : $" ({lane} lane)";
        _security = security;
        _peerId = peerId;
        _endPoint = endPoint;
        _hello = hello;
        _counters = counters;
        _log = log;
        new Thread(Run) { IsBackground = true, Name = lane is null ? $"replication-send-{peerId}" : $"replication-{lane}-{peerId}" }.Start();
    }

    public IPEndPoint EndPoint => _endPoint;

    /// <summary>Completes when the sender thread has ended after <see cref="Stop"/>. Never faults.</summary>
    public Task Loop => _loop.Task;

    /// <summary>Queues a message; never blocks. After <see cref="Stop"/> the message is dropped and counted.</summary>
    public void Enqueue(RaftMessage message)
    {
        lock (_queue)
        {
            if (_stopped)
            {
                Interlocked.Increment(ref _counters.DroppedUnroutable);
                return;
            }
            if (_queue.Count >= TcpTransport.PeerQueueCapacity)
            {
                _queue.Dequeue().ChunkLease?.Dispose();
                Interlocked.Increment(ref _counters.DroppedQueueFull);
            }
            _queue.Enqueue(message);
            if (_queue.Count == 1) Monitor.Pulse(_queue); // the sender waits only on an empty queue
        }
    }

    /// <summary>Largest frame <see cref="TrySendNow"/> writes on the caller's thread: far below the socket buffer a writable
    /// socket has free, so the write cannot block the node loop even when the peer stopped reading.</summary>
    internal const int DirectFrameBytes = 32 * 1024;

    /// <summary>
    /// Writes <paramref name="messages"/> (a small frame's worth: a liveness signal, or a pass's appends and answers to this
    /// peer, <see cref="TcpTransport.SendAll"/>) as one frame on the calling thread when nothing could be sent before them and
    /// the write cannot block: the sender thread waits with nothing taken, nothing is queued, the connection is open and on
    /// the current address, the frame is at most <see cref="DirectFrameBytes"/>, and the socket's send buffer has room. True
    /// when it was written, or dropped and counted by a failed write (the connection is then closed, as the sender thread
    /// does, and the next message dials again); false when they must be queued instead (<see cref="Enqueue"/>). Per frame
    /// this saves the sender thread's wake-up, on this paravirtualized machine about as costly as the send itself (a quiet
    /// node's send threads were a fifth of its CPU, bench finding). Order is kept: the sender thread takes nothing while
    /// this writes.
    /// </summary>
    public bool TrySendNow(IReadOnlyList<RaftMessage> messages)
    {
        if (messages.Count == 0 || RaftMessageCodec.GetBatchSize(messages) > DirectFrameBytes) return false;
        OutboundConnection? connection;
        lock (_queue)
        {
            connection = _connection;
            if (_stopped || !_idle || _writingNow || _queue.Count > 0 || connection is null || connection.IsClosed || !connection.EndPoint.Equals(_endPoint))
                return false;
            _writingNow = true;
        }
        bool written = false;
        try
        {
            if (!connection.CanWriteNow()) return false;
            written = true;
            connection.Writer.WriteRaft(messages);
            Interlocked.Increment(ref _counters.FramesSent);
            Interlocked.Add(ref _counters.MessagesSent, messages.Count);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
        {
            Interlocked.Add(ref _counters.DroppedDisconnected, messages.Count);
            if (!connection.IsClosed) _log($"connection to peer {_peerId}{_lane} at {connection.EndPoint} lost: {e.Message}");
            connection.Dispose();
        }
        finally
        {
            lock (_queue)
            {
                _writingNow = false;
                if (_queue.Count > 0 || _stopped) Monitor.PulseAll(_queue); // what was queued meanwhile waited for this write
            }
        }
        return written;
    }

    /// <summary>Points the peer at a new address: the current connection is closed and the next frame dials the new one. Queued messages are kept.</summary>
    public void UpdateEndPoint(IPEndPoint endPoint)
    {
        _endPoint = endPoint;
        _connection?.Dispose();
    }

    /// <summary>Stops the sender and closes the connection without waiting; await <see cref="Loop"/> to know it has ended.</summary>
    public void Stop()
    {
        lock (_queue)
        {
            _stopped = true;
            Monitor.PulseAll(_queue);
        }
        try { _stop.Cancel(); } catch (ObjectDisposedException) { }
        _connection?.Dispose();
    }

    /// <summary>Waits until something is queued (true) or the sender is stopped (false).</summary>
    private bool WaitForWork(RaftMessage? carried)
    {
        lock (_queue)
        {
            while (!_stopped && (_writingNow || (carried is null && _queue.Count == 0)))
            {
                _idle = carried is null;
                Monitor.Wait(_queue);
            }
            _idle = false;
            return !_stopped;
        }
    }

    private void Run()
    {
        var ct = _stop.Token;
        var batch = new List<RaftMessage>();
        RaftMessage? carried = null; // taken from the queue but did not fit in the previous frame
        var backoff = MinBackoff;
        int failedAttempts = 0;
        try
        {
            while (WaitForWork(carried))
            {
                var connection = _connection;
                if (connection is null || connection.IsClosed || !connection.EndPoint.Equals(_endPoint))
                {
                    connection?.Dispose();
                    _connection = null;
                    var endPoint = _endPoint;
                    try
                    {
                        connection = OutboundConnection.Connect(endPoint, _hello, _security, _log, ConnectTimeout, ct);
                    }
                    catch (Exception e) when (!ct.IsCancellationRequested)
                    {
                        Interlocked.Increment(ref _counters.ConnectFailures);
                        if (failedAttempts++ == 0) _log($"cannot reach peer {_peerId}{_lane} at {endPoint}: {e.Message}; dropping its messages and retrying with backoff");
                        DropQueued(ref carried);
                        ct.WaitHandle.WaitOne(backoff);
                        backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
                        continue;
                    }
                    _connection = connection;
                    if (!endPoint.Equals(_endPoint)) connection.Dispose(); // moved while dialling: the write below fails, the next pass dials the new address
                    Interlocked.Increment(ref _counters.ConnectionsOpened);
                    _log($"connected to peer {_peerId}{_lane} at {endPoint}{(failedAttempts > 0 ? $" after {failedAttempts} failed attempts" : "")}");
                    backoff = MinBackoff;
                    failedAttempts = 0;
                }

                FillBatch(batch, ref carried);
                if (batch.Count == 0) continue;
                try
                {
                    connection.Writer.WriteRaft(batch);
                    Interlocked.Increment(ref _counters.FramesSent);
                    Interlocked.Add(ref _counters.MessagesSent, batch.Count);
                }
                catch (Exception e) when (!ct.IsCancellationRequested)
                {
                    Interlocked.Add(ref _counters.DroppedDisconnected, batch.Count);
                    _log($"connection to peer {_peerId}{_lane} at {connection.EndPoint} lost: {e.Message}");
                    connection.Dispose();
                }
                ReturnChunks(batch); // encoded into the frame's own buffer (written or not): nothing reads them again
                batch.Clear();
            }
        }
        catch (Exception) when (ct.IsCancellationRequested)
        {
            // Stopped (the connection was closed under a write or a dial).
        }
        catch (Exception e)
        {
            // A bug, not a network failure: report it rather than let the thread die unobserved.
            _log($"sender for peer {_peerId}{_lane} failed: {e}");
        }
        finally
        {
            _connection?.Dispose();
            lock (_queue) _stopped = true;
            Interlocked.Add(ref _counters.DroppedDisconnected, batch.Count);
            ReturnChunks(batch); // the write that was under way has ended
            DropQueued(ref carried);
            _stop.Dispose();
            _loop.TrySetResult();
        }
    }

    /// <summary>
    /// Returns the pooled buffers of a snapshot stream's chunks (<see cref="RaftMessage.ChunkLease"/>) once this sender is done
    /// with their messages: after the frame that carried them was encoded (FrameWriter copies every message into a frame
    /// buffer of its own before it writes), or when they are dropped from the queue. This sender is their last holder: the
    /// stream hands a chunk's message to the transport once and never reads it again (NodeHost.Snapshots.cs). A message
    /// dropped elsewhere (an unknown peer) keeps its buffer, which is then collected like any array.
    /// </summary>
    private static void ReturnChunks(IEnumerable<RaftMessage> messages)
    {
        foreach (var m in messages) m.ChunkLease?.Dispose();
    }

    /// <summary>Moves queued messages into <paramref name="batch"/> until the queue is empty or the frame reaches its target size.</summary>
    private void FillBatch(List<RaftMessage> batch, ref RaftMessage? carried)
    {
        long size = 4; // batch count
        while (size < TargetFrameBytes)
        {
            RaftMessage? message = carried;
            carried = null;
            if (message is null && !TryDequeue(out message)) break;
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

    private bool TryDequeue([System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out RaftMessage? message)
    {
        lock (_queue) return _queue.TryDequeue(out message);
    }

    private void DropQueued(ref RaftMessage? carried)
    {
        long dropped = carried is null ? 0 : 1;
        carried?.ChunkLease?.Dispose();
        carried = null;
        lock (_queue)
        {
            dropped += _queue.Count;
            ReturnChunks(_queue);
            _queue.Clear();
        }
        if (dropped > 0) Interlocked.Add(ref _counters.DroppedDisconnected, dropped);
    }
}
