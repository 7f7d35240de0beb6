using System.Net;
using System.Net.Sockets;
using Replication.Engine.Security;

namespace Replication.Engine.Transport;

/// <summary>
/// One established, authenticated connection to a peer (the dialer's side), in either security
/// mode: the frames go to <see cref="Writer"/> over the socket's stream or over TLS. One writer at a
/// time: the sender thread, or a caller of PeerSender.TrySendNow while that thread waits. A watcher thread reads the stream for as long as it is open: after the handshake the
/// listener of a node-to-node connection never sends a frame, so end-of-stream or any byte means the
/// connection is gone or broken, and it is closed at once. That lets the sender reconnect before the
/// next frame instead of losing it to a dead socket. (The watcher reads through the TLS stream, not
/// the socket, because TLS 1.3 itself may send records after the handshake, such as session tickets,
/// which the TLS layer consumes without handing any byte to the watcher.) <see cref="Dispose"/> is
/// idempotent and may be called from any thread (endpoint change, transport disposal) while the
/// sender is writing; the write then fails and the sender treats it as a lost connection.
/// <para>
/// Everything here is synchronous, on the sender's thread and the watcher's: the socket never does an asynchronous
/// operation, so it stays blocking and outside the runtime's socket event loop (<see cref="BlockingStream"/> says why:
/// every acknowledgement of a frame sent was a thread-pool work item there).
/// </para>
/// </summary>
internal sealed class OutboundConnection : IDisposable
{
    private readonly Stream _stream;
    private readonly Socket _socket;
    private int _closed;

    private OutboundConnection(Stream stream, Socket socket, IPEndPoint endPoint)
    {
        _stream = stream;
        _socket = socket;
        Writer = new FrameWriter(_stream);
        EndPoint = endPoint;
    }

    public IPEndPoint EndPoint { get; }
    public FrameWriter Writer { get; }
    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    /// <summary>
    /// Connects to <paramref name="endPoint"/> with TCP_NODELAY, runs the handshake in
    /// <paramref name="security"/>'s mode (<see cref="Handshake.DialSecuredAsync(Stream, string, HelloFrame, TransportSecurity, Action{string}?, CancellationToken)"/>:
    /// <paramref name="hello"/> with a fresh nonce; the listener must prove itself before anything else is sent; in TLS mode its
    /// certificate must be a node's and name <paramref name="endPoint"/>'s address) and starts the close
    /// watcher, blocking the calling thread meanwhile. Throws on any failure (the caller counts and backs off); the socket
    /// is closed then. <paramref name="timeout"/> and <paramref name="cancellationToken"/> end a connect or handshake
    /// still running by closing the socket.
    /// </summary>
    public static OutboundConnection Connect(IPEndPoint endPoint, HelloFrame hello, TransportSecurity security, Action<string>? log,
        TimeSpan timeout, CancellationToken cancellationToken)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(timeout);
            Stream stream;
            using (deadline.Token.Register(socket.Dispose)) // a blocking connect or read is ended by closing its socket
            {
                // Also bounds a blocking connect on Linux (SO_SNDTIMEO), and each read and write of the handshake.
                socket.SendTimeout = socket.ReceiveTimeout = (int)Math.Ceiling(timeout.TotalMilliseconds);
                socket.Connect(endPoint);
                (stream, _) = Handshake.DialSecuredAsync(new BlockingStream(new NetworkStream(socket, ownsSocket: true)), endPoint.Address.ToString(),
                    hello with { Nonce = HandshakeNonce.Create() }, security, log, deadline.Token).GetAwaiter().GetResult();
            }
            deadline.Token.ThrowIfCancellationRequested(); // the socket may have been closed just as the handshake ended
            socket.SendTimeout = socket.ReceiveTimeout = 0; // from here on a write waits as long as the peer takes (the sender's contract)
            var connection = new OutboundConnection(stream, socket, endPoint);
            new Thread(connection.Watch) { IsBackground = true, Name = $"replication-watch-{endPoint.Port}" }.Start();
            return connection;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// True when a small frame can be written now without blocking: the connection is open and its socket's send buffer has
    /// room (poll, no wait). The caller must be the only writer meanwhile (PeerSender.TrySendNow), so the room cannot shrink
    /// before its write.
    /// </summary>
    public bool CanWriteNow()
    {
        if (IsClosed) return false;
        try
        {
            return _socket.Poll(0, SelectMode.SelectWrite);
        }
        catch (Exception e) when (e is ObjectDisposedException or SocketException)
        {
            return false;
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0) return;
        _stream.Dispose(); // closes the socket; a pending write or the watcher's read fails promptly
    }

    private void Watch()
    {
        var buffer = new byte[1];
        try
        {
            _stream.ReadExactly(buffer);
        }
        catch (Exception)
        {
            // Closed by us, reset by the peer, end of stream, or a TLS failure: either way the connection is done.
        }
        Dispose();
    }
}
