using System.Net;
using System.Net.Sockets;

namespace Replication.Engine.Transport;

/// <summary>
/// One established, authenticated connection to a peer (the dialer's side). The sender loop is the
/// only writer. A watcher reads the socket for as long as it is open: after the handshake the
/// listener of a node-to-node connection never sends anything, so end-of-stream or any byte means the connection is gone or
/// broken, and it is closed at once. That lets the sender reconnect before the next frame
/// instead of losing it to a dead socket. <see cref="Dispose"/> is idempotent and may be called
/// from any thread (endpoint change, transport disposal) while the sender is writing; the
/// write then fails and the sender treats it as a lost connection.
/// </summary>
internal sealed class OutboundConnection : IDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private int _closed;

    private OutboundConnection(Socket socket, IPEndPoint endPoint)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        Writer = new FrameWriter(_stream);
        EndPoint = endPoint;
    }

    public IPEndPoint EndPoint { get; }
    public FrameWriter Writer { get; }
    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    /// <summary>
    /// Connects to <paramref name="endPoint"/> with TCP_NODELAY, runs the authenticated handshake
    /// (<see cref="Handshake.DialAsync"/>: <paramref name="hello"/> with a fresh nonce, the listener
    /// must prove it knows <paramref name="key"/> before anything else is sent) and starts the close
    /// watcher. Throws on any failure (the caller counts and backs off); the socket is closed then.
    /// </summary>
    public static async Task<OutboundConnection> ConnectAsync(IPEndPoint endPoint, HelloFrame hello, ClusterKey key, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        OutboundConnection? connection = null;
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(timeout);
            await socket.ConnectAsync(endPoint, deadline.Token).ConfigureAwait(false);
            connection = new OutboundConnection(socket, endPoint);
            using (var reader = new FrameReader(connection._stream))
                await Handshake.DialAsync(connection._stream, reader, hello with { Nonce = HandshakeNonce.Create() },
                    id => id == hello.ClusterId ? key : null, deadline.Token).ConfigureAwait(false);
            _ = connection.WatchAsync();
            return connection;
        }
        catch
        {
            if (connection is not null) connection.Dispose();
            else socket.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0) return;
        _stream.Dispose(); // closes the socket; a pending write or the watcher's read fails promptly
    }

    private async Task WatchAsync()
    {
        var buffer = new byte[1];
        try
        {
            await _socket.ReceiveAsync(buffer, SocketFlags.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Closed by us or reset by the peer: either way the connection is done.
        }
        Dispose();
    }
}
