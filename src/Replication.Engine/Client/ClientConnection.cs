using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Replication.Engine.Transport;

namespace Replication.Engine.Client;

/// <summary>
/// One authenticated client connection to one node: pipelined requests matched to responses by
/// correlation id. Thread-safe: any number of callers may <see cref="SendAsync"/> concurrently
/// (writes are serialised; one reader task completes the waiting callers). When the connection
/// fails, every waiting caller gets a <see cref="ConnectionLostException"/> and
/// <see cref="IsClosed"/> becomes true; the owner (ClusterClient) then dials another endpoint.
/// </summary>
internal sealed class ClientConnection : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly FrameReader _reader;
    private readonly FrameWriter _writer;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ConcurrentDictionary<long, TaskCompletionSource<ClientResponse>> _pending = new();
    private long _nextId;
    private int _closed;
    private Task _readLoop = Task.CompletedTask;

    private ClientConnection(Socket socket, string endpoint)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new FrameReader(_stream);
        _writer = new FrameWriter(_stream);
        Endpoint = endpoint;
    }

    public string Endpoint { get; }
    public Guid ClusterId { get; private set; }
    public bool IsClosed => Volatile.Read(ref _closed) != 0;
    /// <summary>Cluster name to stamp on decoded records.</summary>
    public string ClusterName { get; set; } = "";

    /// <summary>
    /// Connects and authenticates (<see cref="Handshake.DialAsync"/> as a client: node id 0, cluster
    /// id <paramref name="clusterId"/> or empty when not yet known).
    /// </summary>
    /// <exception cref="AuthenticationFailedException">The node does not share our secret.</exception>
    /// <exception cref="IOException">Or SocketException / OperationCanceledException (timeout): the endpoint did not answer properly.</exception>
    public static async Task<ClientConnection> ConnectAsync(string endpoint, ClusterSecret secret, Guid clusterId, TimeSpan timeout, CancellationToken ct)
    {
        var target = ParseEndpoint(endpoint);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        ClientConnection? connection = null;
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
            deadline.CancelAfter(timeout);
            await socket.ConnectAsync(target, deadline.Token).ConfigureAwait(false);
            connection = new ClientConnection(socket, endpoint);
            ChallengeFrame challenge;
            try
            {
                challenge = await Handshake.DialAsync(connection._stream, connection._reader, new HelloFrame(HelloFrame.ClientNodeId, clusterId),
                    id => clusterId == Guid.Empty || id == clusterId ? secret.DeriveKey(id) : null, deadline.Token).ConfigureAwait(false);
            }
            catch (ProtocolException e) when (e.Reason == ProtocolErrorReason.AuthenticationFailed)
            {
                throw new AuthenticationFailedException($"The node at {endpoint} and this client do not share the cluster secret (its handshake proof does not verify).") { Target = endpoint };
            }
            connection.ClusterId = challenge.ClusterId;
            connection._readLoop = Task.Run(connection.ReadLoopAsync);
            return connection;
        }
        catch
        {
            if (connection is not null) await connection.DisposeAsync().ConfigureAwait(false);
            else socket.Dispose();
            throw;
        }
    }

    /// <summary>"host:port" (IPv4, [IPv6] or a DNS name).</summary>
    /// <exception cref="FormatException">Not of that form.</exception>
    public static EndPoint ParseEndpoint(string endpoint)
    {
        if (IPEndPoint.TryParse(endpoint, out var ip) && ip.Port != 0 && endpoint.Contains(':')) return ip;
        int colon = endpoint.LastIndexOf(':');
        if (colon > 0 && int.TryParse(endpoint.AsSpan(colon + 1), out int port) && port is > 0 and <= 65535 && Uri.CheckHostName(endpoint[..colon]) != UriHostNameType.Unknown)
            return new DnsEndPoint(endpoint[..colon], port);
        throw new FormatException($"'{endpoint}' is not an endpoint of the form host:port.");
    }

    /// <summary>
    /// Sends a request and waits for its response. <paramref name="make"/> builds the request for the
    /// correlation id this connection assigns. <paramref name="sent"/> is set once the frame was handed
    /// to the socket (after that, a failure leaves the request's outcome unknown).
    /// </summary>
    /// <exception cref="ConnectionLostException">The connection failed before the response arrived.</exception>
    /// <exception cref="TimeoutException">No response within <paramref name="timeout"/>.</exception>
    public async Task<ClientResponse> SendAsync(Func<long, ClientRequest> make, TimeSpan timeout, SentFlag<bool> sent, CancellationToken ct)
    {
        long id = Interlocked.Increment(ref _nextId);
        var request = make(id);
        byte[] payload = ClientCodec.EncodeRequest(request);
        var completion = new TaskCompletionSource<ClientResponse>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = completion;
        try
        {
            if (IsClosed) throw new ConnectionLostException(Endpoint);
            await _writeLock.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                sent.Value = true;
                await _writer.WriteAsync(FrameType.ClientRequest, payload, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
            {
                Close();
                throw new ConnectionLostException(Endpoint);
            }
            finally { _writeLock.Release(); }
            return await completion.Task.WaitAsync(timeout, ct).ConfigureAwait(false);
        }
        finally
        {
            _pending.TryRemove(id, out _);
        }
    }

    private async Task ReadLoopAsync()
    {
        try
        {
            while (await _reader.ReadAsync(FrameCodec.MaxPayloadSize, FrameType.ClientResponse).ConfigureAwait(false) is { } frame)
            {
                var response = ClientCodec.DecodeResponse(frame.Payload.Span, ClusterName);
                if (_pending.TryGetValue(response.CorrelationId, out var waiter)) waiter.TrySetResult(response);
            }
        }
        catch (Exception)
        {
            // Closed, reset, or a malformed response: this connection is finished either way.
        }
        finally
        {
            Close();
        }
    }

    private void Close()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0) return;
        _stream.Dispose();
        foreach (var waiter in _pending.Values) waiter.TrySetException(new ConnectionLostException(Endpoint));
    }

    public async ValueTask DisposeAsync()
    {
        Close();
        await _readLoop.ConfigureAwait(false);
        _reader.Dispose();
    }
}

/// <summary>Internal signal: the connection to <see cref="Endpoint"/> broke. ClusterClient turns it into a retry or a user-facing error.</summary>
internal sealed class ConnectionLostException(string endpoint) : Exception($"The connection to {endpoint} was lost.")
{
    public string Endpoint { get; } = endpoint;
}

/// <summary>A mutable box (a flag set by a callee for its caller across an await).</summary>
internal sealed class SentFlag<T>(T value)
{
    public T Value = value;
}
