using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Replication.Engine.Client;
using Replication.Engine.Raft;
using Replication.Engine.Security;

namespace Replication.Engine.Transport;

// The listening side: accepting connections, the handshake of the security mode (shared secret or
// TLS), reading Raft frames, and handing client connections to a client session.
public sealed partial class TcpTransport
{
    /// <summary>How long a new connection has to complete the handshake (Hello and proof); then it is closed.</summary>
    internal static readonly TimeSpan HandshakeTimeout = Handshake.Timeout;

    private readonly ConcurrentDictionary<long, InboundConnection> _inbound = new();
    private long _nextConnectionId;

    private async Task AcceptLoopAsync(TcpListener listener, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptSocketAsync(ct).ConfigureAwait(false);
            }
            catch (Exception) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException e)
            {
                // Transient (a connection reset before accept) or resource exhaustion: back off briefly so the loop cannot spin.
                Log($"accept failed: {e.Message}");
                try { await Task.Delay(100, ct).ConfigureAwait(false); } catch (OperationCanceledException) { return; }
                continue;
            }
            socket.NoDelay = true;
            var connection = new InboundConnection(Interlocked.Increment(ref _nextConnectionId), socket);
            _inbound[connection.Id] = connection;
            bool onThread = !SaysClientHello(socket);
            connection.Handler = Task.Run(() => HandleInboundAsync(connection, onThread, ct));
        }
    }

    /// <summary>
    /// Whether the dialer's first frame has already arrived and is a client's Hello (the shared-secret mode; read
    /// without consuming it and without waiting). A client's connection then shakes hands asynchronously, on the thread
    /// pool; every other one (a node's, one whose Hello has not arrived yet, any TLS connection) on a thread of its own
    /// (<see cref="HandleInboundAsync"/>), which costs a thread's start: about 1 ms per connection on the loaded 2-core
    /// machine, which made 64 clients connecting at once take twice as long (bench finding). Only the path is chosen
    /// here; either path checks the whole handshake.
    /// </summary>
    private bool SaysClientHello(Socket socket)
    {
        if (_security.IsTls) return false;
        const int needed = FrameCodec.HeaderSize + 5; // the Hello's header, its version byte and its node id
        try
        {
            if (socket.Available < needed) return false;
            var head = new byte[needed];
            return socket.Receive(head, SocketFlags.Peek) == needed
                && BinaryPrimitives.ReadInt32LittleEndian(head.AsSpan(FrameCodec.HeaderSize + 1)) == HelloFrame.ClientNodeId;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return false; // the handshake reports it
        }
    }

    /// <summary>
    /// Runs one inbound connection: handshake, then frames until the peer closes, the transport
    /// stops, or the peer violates the protocol (then the connection is closed, logged and counted).
    /// <paramref name="onThread"/>: the handshake and a node's frames run synchronously on a thread of their own, over a
    /// socket that never does an asynchronous operation and so stays blocking (<see cref="BlockingStream"/> says why);
    /// otherwise (a client's Hello seen, <see cref="SaysClientHello"/>) the handshake runs asynchronously. A client's
    /// connection is served asynchronously once its handshake is done. Never throws.
    /// </summary>
    private async Task HandleInboundAsync(InboundConnection connection, bool onThread, CancellationToken ct)
    {
        EndPoint? remote = null;
        Stream? stream = null;
        FrameReader? reader = null;
        try
        {
            remote = connection.Socket.RemoteEndPoint;
            var blocking = new BlockingStream(new NetworkStream(connection.Socket, ownsSocket: true)) { Blocking = onThread };
            stream = blocking;
            // Takes over what the handshake returned; true for a client.
            bool Accept((Stream Stream, FrameReader Reader, HelloFrame Hello, string Peer) shaken)
            {
                stream = shaken.Stream;
                reader = shaken.Reader;
                Interlocked.Increment(ref _counters.ConnectionsAccepted);
                Log(shaken.Hello.IsClient ? $"accepted a client from {shaken.Peer}" : $"accepted node {shaken.Hello.NodeId} from {shaken.Peer}");
                return shaken.Hello.IsClient;
            }
            bool NodeFrames(FrameReader framer, int node)
            {
                ReceiveRaftFrames(framer, node);
                Log($"node {node} at {remote} closed its connection");
                return false;
            }
            bool client;
            if (onThread)
            {
                client = await OnThreadAsync("replication-inbound", () =>
                {
                    var shaken = HandshakeInboundAsync(connection.Socket, blocking, remote, ct).GetAwaiter().GetResult();
                    return Accept(shaken) || NodeFrames(shaken.Reader, shaken.Hello.NodeId);
                }).ConfigureAwait(false);
            }
            else
            {
                var shaken = await HandshakeInboundAsync(connection.Socket, blocking, remote, ct).ConfigureAwait(false);
                client = Accept(shaken) || await OnThreadAsync($"replication-recv-{shaken.Hello.NodeId}", () => NodeFrames(shaken.Reader, shaken.Hello.NodeId)).ConfigureAwait(false);
            }
            if (!client) return;
            blocking.Blocking = false; // a client session is served asynchronously, on the thread pool
            await ClientSession.ServeAsync(stream, reader!, _clientHandler!, Log, ct).ConfigureAwait(false);
            Log($"client at {remote} disconnected");
        }
        catch (ProtocolException e)
        {
            // Log before counting: whoever waits on the counter may read the reason at once.
            Log($"closing connection from {remote}: {e.Message}");
            Interlocked.Increment(ref _counters.ConnectionsRejected);
        }
        catch (Exception) when (ct.IsCancellationRequested)
        {
            // Transport stopping.
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            Log($"connection from {remote} lost: {e.Message}");
        }
        catch (Exception e)
        {
            Log($"connection from {remote} failed: {e}");
        }
        finally
        {
            reader?.Dispose();
            if (stream is not null) await stream.DisposeAsync().ConfigureAwait(false);
            connection.Close();
            _inbound.TryRemove(connection.Id, out _);
        }
    }

    /// <summary>
    /// The listener's handshake in this transport's mode, within <see cref="HandshakeTimeout"/>: it blocks the calling
    /// thread when <paramref name="blocking"/> does (each read and write is then bounded by the socket's timeouts, and the
    /// whole by closing the socket at the deadline). Returns the stream to use from now on (<paramref name="blocking"/>, or
    /// TLS over it), its frame reader, the peer's Hello and how to name the peer in the log.
    /// </summary>
    private async Task<(Stream Stream, FrameReader Reader, HelloFrame Hello, string Peer)> HandshakeInboundAsync(Socket socket, BlockingStream blocking,
        EndPoint? remote, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(HandshakeTimeout);
        Stream stream = blocking;
        FrameReader? reader = null;
        try
        {
            using (deadline.Token.Register(socket.Dispose)) // a blocking read is ended by closing its socket
            {
                socket.SendTimeout = socket.ReceiveTimeout = (int)Math.Ceiling(HandshakeTimeout.TotalMilliseconds);
                CheckSecurityMode(socket);
                HelloFrame hello;
                string peer = $"{remote}";
                if (_security.Certificates is { } certificates)
                {
                    var (tls, role, subject) = await TlsChannel.AuthenticateAsListenerAsync(stream, certificates.Current(Log), deadline.Token).ConfigureAwait(false);
                    stream = tls;
                    reader = new FrameReader(stream);
                    hello = await TlsHelloAsync(stream, reader, role, subject, deadline.Token).ConfigureAwait(false);
                    peer = $"{remote} (certificate '{subject}')";
                }
                else
                {
                    reader = new FrameReader(stream);
                    hello = await HandshakeAsync(stream, reader, deadline.Token).ConfigureAwait(false);
                }
                deadline.Token.ThrowIfCancellationRequested(); // the socket may have been closed just as the handshake ended
                socket.SendTimeout = socket.ReceiveTimeout = 0;
                return (stream, reader, hello, peer);
            }
        }
        catch (Exception e) when (!ct.IsCancellationRequested && (deadline.IsCancellationRequested || IsTimeout(e)))
        {
            reader?.Dispose();
            throw new ProtocolException(ProtocolErrorReason.HandshakeTimeout, $"No complete handshake within {HandshakeTimeout.TotalSeconds:0.#} s.");
        }
        catch
        {
            reader?.Dispose();
            if (!ReferenceEquals(stream, blocking)) await stream.DisposeAsync().ConfigureAwait(false); // the TLS stream; the caller disposes the socket's
            throw;
        }
    }

    /// <summary>A blocking read or write that ran into the socket's timeout.</summary>
    private static bool IsTimeout(Exception e) =>
        (e as SocketException ?? e.InnerException as SocketException) is { SocketErrorCode: SocketError.TimedOut or SocketError.WouldBlock };

    /// <summary>
    /// Reads a peer's Raft frames until it closes the connection, blocking the calling thread (see <see cref="OnThreadAsync"/>).
    /// Throws what <see cref="FrameReader.Read"/> throws; closing the socket from another thread ends the read.
    /// A snapshot chunk's bytes (<see cref="RaftMessage.Chunk"/>, the snapshot lane's messages) are a slice of the reader's
    /// frame buffer, handed to the receive callback without a copy: valid until the callback returns, since the next frame is
    /// read into the same buffer (RaftMessageCodec.DecodeBatchBorrowingChunks). The callback copies what it keeps.
    /// </summary>
    private void ReceiveRaftFrames(FrameReader reader, int peerId)
    {
        while (reader.Read(FrameCodec.MaxPayloadSize, FrameType.Raft) is { } frame)
        {
            var messages = RaftMessageCodec.DecodeBatchBorrowingChunks(frame.Payload);
            Interlocked.Increment(ref _counters.FramesReceived);
            foreach (var message in messages)
            {
                // The connection speaks for the node that said Hello, and only to this node (members map to nodes: ReplicaIds).
                if (ReplicaIds.NodeOf(message.To) != _nodeId || ReplicaIds.NodeOf(message.From) != peerId)
                {
                    Interlocked.Increment(ref _counters.DroppedMisaddressed);
                    continue;
                }
                Interlocked.Increment(ref _counters.MessagesReceived);
                if (IsCutOff(ReplicaIds.NodeOf(message.From))) continue; // a drill's partition (TcpTransport.Faults.cs)
                try { _onReceive(message); }
                catch (Exception e) { Log($"receive callback failed on {message}: {e}"); }
            }
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> on a thread of its own and completes when it returns (or with what it threw). A peer's
    /// frames are read this way rather than by an async loop: each frame then wakes that one thread, instead of a
    /// thread-pool worker that spins (sched_yield) before it sleeps again, which was most of an idle node's CPU
    /// (bench finding). A node has a few peers, so a few threads; a client's thread ends with its handshake.
    /// </summary>
    private static Task<T> OnThreadAsync<T>(string name, Func<T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        new Thread(() =>
        {
            try
            {
                done.TrySetResult(work());
            }
            catch (Exception e)
            {
                done.TrySetException(e);
            }
        }) { IsBackground = true, Name = name }.Start();
        return done.Task;
    }

    /// <summary>
    /// The first byte tells the two security modes apart: a TLS connection opens with a handshake
    /// record (0x16), a shared-secret one with a Hello frame (whose first byte is its length, 37). A
    /// peer of the other mode is refused with <see cref="ProtocolErrorReason.SecurityModeMismatch"/>,
    /// so the log names the misconfiguration instead of a garbled frame or TLS error. A connection
    /// that closes before its first byte is left to the handshake to report.
    /// </summary>
    private void CheckSecurityMode(Socket socket)
    {
        int first = TlsChannel.PeekFirstByte(socket);
        if (first < 0) return;
        if (_security.IsTls && first != TlsChannel.HandshakeRecord)
            throw new ProtocolException(ProtocolErrorReason.SecurityModeMismatch, "The peer did not start a TLS handshake (it runs the shared-secret mode, or is not a Replication peer); this node requires TLS.");
        if (!_security.IsTls && first == TlsChannel.HandshakeRecord)
            throw new ProtocolException(ProtocolErrorReason.SecurityModeMismatch, "The peer started a TLS handshake; this node runs the shared-secret mode (no certificates).");
    }

    /// <summary>
    /// The listener's side of the shared-secret handshake (docs/wire-protocol.md): the first frame
    /// must be a Hello (at most a Hello's size, so an unauthenticated peer cannot make us allocate
    /// more) with our protocol version and our cluster id (or, from a client, an empty one); we
    /// answer with a Challenge (our nonce, cluster id and proof); the next frame must be the
    /// dialer's Proof for THIS connection's nonce, checked in constant time. Nothing else is read
    /// or sent before that. The caller bounds it with <see cref="HandshakeTimeout"/>.
    /// </summary>
    private async Task<HelloFrame> HandshakeAsync(Stream stream, FrameReader reader, CancellationToken ct)
    {
        var (hello, helloPayload) = await ReadHelloAsync(reader, ct).ConfigureAwait(false);
        var nonce = HandshakeNonce.Create();
        var challenge = new ChallengeFrame(nonce, _clusterId, _key!.ListenerProof(helloPayload, nonce));
        await new FrameWriter(stream).WriteAsync(FrameType.Challenge, challenge.Encode(), ct).ConfigureAwait(false);

        var proof = await reader.ReadAsync(ClusterKey.ProofLength, FrameType.Proof, ct).ConfigureAwait(false)
            ?? throw new ProtocolException(ProtocolErrorReason.AuthenticationFailed, $"Node {hello.NodeId} closed the connection instead of proving it knows the cluster secret.");
        if (proof.Payload.Length != ClusterKey.ProofLength || !_key.VerifyDialerProof(helloPayload, nonce, proof.Payload.Span))
            throw new ProtocolException(ProtocolErrorReason.AuthenticationFailed, $"Node {hello.NodeId}'s proof does not verify (wrong cluster secret, or a proof made for another connection).");
        return hello;
    }

    /// <summary>
    /// The listener's side inside TLS (docs/wire-protocol.md, "TLS"), after the dialer's certificate
    /// passed: the first frame must be a Hello as in the shared-secret mode, and a node's Hello
    /// (node id &gt; 0) needs a node certificate, so a client certificate cannot speak for a node.
    /// We answer with our own Hello (our node id and cluster id); no proofs, since TLS has
    /// authenticated both sides. The caller bounds it with <see cref="HandshakeTimeout"/>.
    /// </summary>
    private async Task<HelloFrame> TlsHelloAsync(Stream stream, FrameReader reader, CertificateRole peerRole, string peerSubject, CancellationToken ct)
    {
        var (hello, _) = await ReadHelloAsync(reader, ct,
            "Connection closed after the TLS handshake, before a Hello (the dialer may have refused this node's certificate; its log says why).").ConfigureAwait(false);
        if (!hello.IsClient && peerRole != CertificateRole.Node)
            throw new ProtocolException(ProtocolErrorReason.CertificateRejected, $"A {peerRole.ToString().ToLowerInvariant()} certificate ('{peerSubject}') cannot speak for node {hello.NodeId}; only a node certificate can.");
        await new FrameWriter(stream).WriteAsync(FrameType.Hello, new HelloFrame(_nodeId, _clusterId).Encode(), ct).ConfigureAwait(false);
        return hello;
    }

    /// <summary>Reads and checks the dialer's Hello (both modes): our protocol version, a node id of 0 (client) or more, our cluster id (or empty from a client), and a client only if we serve clients.</summary>
    private async Task<(HelloFrame Hello, byte[] Payload)> ReadHelloAsync(FrameReader reader, CancellationToken ct, string closedMessage = "Connection closed before a Hello.")
    {
        var frame = await reader.ReadAsync(HelloFrame.EncodedSize, FrameType.Hello, ct).ConfigureAwait(false)
            ?? throw new ProtocolException(ProtocolErrorReason.Truncated, closedMessage);
        byte[] helloPayload = frame.Payload.ToArray();
        var hello = HelloFrame.Decode(helloPayload);
        if (hello.ProtocolVersion != FrameCodec.ProtocolVersion)
            throw new ProtocolException(ProtocolErrorReason.UnsupportedVersion, $"Node {hello.NodeId} speaks protocol {hello.ProtocolVersion}; this node speaks {FrameCodec.ProtocolVersion}.");
        if (hello.NodeId < 0)
            throw new ProtocolException(ProtocolErrorReason.MalformedPayload, $"Hello names node id {hello.NodeId}.");
        bool clientWithoutId = hello.IsClient && hello.ClusterId == Guid.Empty;
        if (hello.ClusterId != _clusterId && !clientWithoutId)
            throw new ProtocolException(ProtocolErrorReason.ClusterMismatch, $"Node {hello.NodeId} belongs to cluster {hello.ClusterId}, not {_clusterId}.");
        if (hello.IsClient && _clientHandler is null)
            throw new ProtocolException(ProtocolErrorReason.UnexpectedFrame, "A client said Hello, but this node serves no clients.");
        return (hello, helloPayload);
    }

    /// <summary>An accepted socket and the task serving it. Close is idempotent and callable from any thread.</summary>
    private sealed class InboundConnection(long id, Socket socket)
    {
        public long Id { get; } = id;
        public Socket Socket { get; } = socket;
        public Task Handler { get; set; } = Task.CompletedTask;
        public void Close() => Socket.Dispose();
    }
}
