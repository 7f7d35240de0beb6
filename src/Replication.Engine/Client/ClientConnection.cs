using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Replication.Engine.Security;
using Replication.Engine.Transport;

namespace Replication.Engine.Client;

/// <summary>
/// One authenticated client connection to one node (over TLS or in the shared-secret mode, see
/// <see cref="TransportSecurity"/>): pipelined requests matched to responses by
/// correlation id. Thread-safe: any number of callers may <see cref="SendAsync"/> concurrently
/// (writes are serialised; one reader task completes the waiting callers). When the connection
/// fails, every waiting caller gets a <see cref="ConnectionLostException"/> and
/// <see cref="IsClosed"/> becomes true; the owner (ClusterClient) then dials another endpoint.
/// </summary>
internal sealed class ClientConnection : IAsyncDisposable
{
    private readonly Stream _stream;
    private readonly FrameReader _reader;
    private readonly FrameWriter _writer;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ConcurrentDictionary<long, TaskCompletionSource<ClientResponse>> _pending = new();
    private long _nextId;
    private int _closed;
    private int _retired;
    private int _disposed;
    private Task _readLoop = Task.CompletedTask;

    private ClientConnection(Stream stream, string endpoint, Guid clusterId)
    {
        _stream = stream;
        _reader = new FrameReader(_stream);
        _writer = new FrameWriter(_stream);
        Endpoint = endpoint;
        ClusterId = clusterId;
    }

    public string Endpoint { get; }
    public Guid ClusterId { get; }
    /// <summary>Closed, or retired (<see cref="Retire"/>): either way it takes no new request.</summary>
    public bool IsClosed => Volatile.Read(ref _closed) != 0 || Volatile.Read(ref _retired) != 0;
    /// <summary>Cluster name to stamp on decoded records.</summary>
    public string ClusterName { get; set; } = "";

    /// <summary>Connects with the shared-secret mode (see the <see cref="TransportSecurity"/> overload).</summary>
    public static Task<ClientConnection> ConnectAsync(string endpoint, ClusterSecret secret, Guid clusterId, TimeSpan timeout, CancellationToken ct) =>
        ConnectAsync(endpoint, TransportSecurity.SharedSecret(secret), clusterId, timeout, ct);

    /// <summary>
    /// Connects and authenticates as a client (<see cref="Handshake.DialSecuredAsync"/>: node id 0,
    /// cluster id <paramref name="clusterId"/> or empty when not yet known) in <paramref name="security"/>'s
    /// mode. With TLS, the node's certificate must be a node certificate of the cluster CA naming the
    /// endpoint's host, and this side presents its own (a client's, or a node's when a node dials a peer).
    /// </summary>
    /// <exception cref="AuthenticationFailedException">The two sides do not accept each other: no shared secret, a certificate
    /// refused by either side (not from the cluster CA, expired, wrong role, host not named), a failed TLS handshake,
    /// or the node runs the other security mode. The message says which, never a secret.</exception>
    /// <exception cref="IOException">Or SocketException / OperationCanceledException (timeout) / ProtocolException (another cluster,
    /// malformed answer): the endpoint did not answer properly.</exception>
    public static async Task<ClientConnection> ConnectAsync(string endpoint, TransportSecurity security, Guid clusterId, TimeSpan timeout, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(security);
        var target = ParseEndpoint(endpoint);
        string host = target switch
        {
            IPEndPoint ip => ip.Address.ToString(),
            DnsEndPoint dns => dns.Host,
            _ => endpoint,
        };
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
            deadline.CancelAfter(timeout);
            await socket.ConnectAsync(target, deadline.Token).ConfigureAwait(false);
            Stream stream;
            Guid listenerCluster;
            try
            {
                (stream, listenerCluster) = await Handshake.DialSecuredAsync(socket, host, new HelloFrame(HelloFrame.ClientNodeId, clusterId), security, null, deadline.Token).ConfigureAwait(false);
            }
            catch (ProtocolException e) when (e.Reason == ProtocolErrorReason.AuthenticationFailed)
            {
                throw new AuthenticationFailedException($"The node at {endpoint} and this client do not share the cluster secret (its handshake proof does not verify).") { Target = endpoint };
            }
            catch (ProtocolException e) when (e.Reason is ProtocolErrorReason.CertificateRejected or ProtocolErrorReason.TlsHandshakeFailed)
            {
                throw new AuthenticationFailedException($"TLS with the node at {endpoint} failed: {e.Message}") { Target = endpoint };
            }
            catch (IOException e) when (security.IsTls && !deadline.IsCancellationRequested)
            {
                // A node in the shared-secret mode reads our TLS ClientHello as a bad frame and closes.
                throw new AuthenticationFailedException($"The node at {endpoint} closed the connection during the TLS handshake: it does not run TLS "
                    + $"(the shared-secret mode), or it refused this side ({e.Message}).") { Target = endpoint };
            }
            var connection = new ClientConnection(stream, endpoint, listenerCluster);
            connection._readLoop = Task.Run(connection.ReadLoopAsync);
            return connection;
        }
        catch
        {
            socket.Dispose();
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
            if (Volatile.Read(ref _retired) != 0 && _pending.IsEmpty) _ = DisposeAsync();
        }
    }

    /// <summary>
    /// Takes no new request from now on (a request started on it meets <see cref="ConnectionLostException"/> before being sent,
    /// so it may go elsewhere), and closes once the requests it carries have ended: answered, or given up at their timeouts.
    /// The client retires its connection to a node that stopped answering without failing what that node may still answer.
    /// </summary>
    public void Retire()
    {
        Volatile.Write(ref _retired, 1);
        if (_pending.IsEmpty) _ = DisposeAsync();
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
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
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
