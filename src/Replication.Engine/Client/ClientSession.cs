using System.Collections.Concurrent;
using Replication.Engine.Cluster;
using Replication.Engine.Transport;

namespace Replication.Engine.Client;

/// <summary>
/// Serves one authenticated client connection on a node: reads request frames, runs each request
/// concurrently through the <see cref="IClientRequestHandler"/> (so a client may pipeline), and
/// writes each response, tagged with its request's correlation id, as soon as it is ready.
/// <para>
/// Bounds: at most <see cref="MaxInFlight"/> requests run at once per connection (the reader stops
/// reading until one finishes: back pressure, not buffering); at most <see cref="MaxOpenScans"/>
/// scan cursors are open per connection; a scan page holds at most the page size asked for and
/// about <see cref="PageBytes"/> of data, and the next page is read only when the client asks for
/// it, so a huge prefix is never materialised on either side.
/// </para>
/// <para>
/// A malformed frame or request (a <see cref="ProtocolException"/>) ends the session; the caller
/// closes that one connection and logs the reason. Engine errors are answered as error responses
/// with the engine's ErrorId. When the connection ends, running requests are cancelled and their
/// answers dropped, and every open cursor is disposed. The session does not wait for running
/// requests to finish, so a request that stops this very node (whose transport then closes this
/// connection) cannot deadlock the stop.
/// </para>
/// </summary>
internal sealed class ClientSession
{
    public const int MaxInFlight = 64;
    public const int MaxOpenScans = 16;
    public const int PageBytes = 1024 * 1024;

    private readonly FrameWriter _writer;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly SemaphoreSlim _inFlight = new(MaxInFlight, MaxInFlight);
    private readonly IClientRequestHandler _handler;
    private readonly Action<string> _log;
    private readonly CancellationTokenSource _closed;
    private readonly ConcurrentDictionary<long, Cursor> _scans = new();

    private ClientSession(Stream stream, IClientRequestHandler handler, Action<string> log, CancellationToken ct)
    {
        _writer = new FrameWriter(stream);
        _handler = handler;
        _log = log;
        _closed = CancellationTokenSource.CreateLinkedTokenSource(ct);
    }

    /// <summary>Serves until the client closes the connection (returns), or throws: <see cref="ProtocolException"/>
    /// for a malformed request, IOException when the connection fails, OperationCanceledException on shutdown.</summary>
    public static async Task ServeAsync(Stream stream, FrameReader reader, IClientRequestHandler handler, Action<string> log, CancellationToken ct)
    {
        var session = new ClientSession(stream, handler, log, ct);
        try
        {
            await session.ReadLoopAsync(reader).ConfigureAwait(false);
        }
        finally
        {
            session.Close();
        }
    }

    private async Task ReadLoopAsync(FrameReader reader)
    {
        var ct = _closed.Token;
        while (true)
        {
            await _inFlight.WaitAsync(ct).ConfigureAwait(false);
            if (await reader.ReadAsync(FrameCodec.MaxPayloadSize, FrameType.ClientRequest, ct).ConfigureAwait(false) is not { } frame)
                return;
            var request = ClientCodec.DecodeRequest(frame.Payload.Span); // the payload buffer is reused by the next read: decode now
            // A key request runs on this thread until it waits for the node (its routing is short and never blocks), which
            // saves a thread-pool hop per request; anything else (admin work may read or write files) gets its own work item.
            if (IsKeyRequest(request)) _ = RunAsync(request);
            else _ = Task.Run(() => RunAsync(request));
        }
    }

    private static bool IsKeyRequest(ClientRequest request) =>
        request is WriteRequest or GetRequest || request is ForwardedRequest { Inner: WriteRequest or GetRequest };

    private async Task RunAsync(ClientRequest request)
    {
        var ct = _closed.Token;
        try
        {
            ClientResponse response;
            try
            {
                response = await HandleAsync(request, ct).ConfigureAwait(false);
            }
            catch (ReplicationException e)
            {
                response = new ErrorResponse(request.CorrelationId, AnsweredType(request), RemoteError.From(e));
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return; // connection gone: nobody to answer
            }
            catch (Exception e)
            {
                _log($"client request {request.Type} failed: {e}");
                response = new ErrorResponse(request.CorrelationId, AnsweredType(request),
                    new RemoteError("ServerError", ReplicationErrorKind.Unavailable, $"The node failed to serve the request: {e.Message}"));
            }
            if (!ReferenceEquals(response, AnsweredAlready)) await WriteResponseAsync(response, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException or System.Net.Sockets.SocketException)
        {
            // The connection closed while this request ran; its answer is dropped.
        }
        finally
        {
            try { _inFlight.Release(); } catch (ObjectDisposedException) { }
        }
    }

    /// <summary>What <see cref="HandleAsync"/> returns for a request it has answered itself (a stop of this node).</summary>
    private static readonly ClientResponse AnsweredAlready = new AckResponse(0, ClientRequestType.StopNode);

    private async Task WriteResponseAsync(ClientResponse response, CancellationToken ct)
    {
        byte[] payload = ClientCodec.EncodeResponse(response);
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try { await _writer.WriteAsync(FrameType.ClientResponse, payload, ct).ConfigureAwait(false); }
        finally { _writeLock.Release(); }
    }

    private async Task<ClientResponse> HandleAsync(ClientRequest request, CancellationToken ct)
    {
        long id = request.CorrelationId;
        switch (request)
        {
            case WriteRequest r:
            {
                var results = await _handler.WriteAsync(r.Writes, r.Concern, r.Timeout, ct).ConfigureAwait(false);
                return new WriteResponse(id, results.Select(x => x.Error is { } e
                    ? new WriteOutcome(RemoteError.From(e), x.Existed, false, 0, 0, 0)
                    : new WriteOutcome(null, x.Existed, x.Record is not null, x.Record?.Version ?? 0, x.Record?.Shard ?? 0, x.Record?.Index ?? 0)).ToArray());
            }
            case GetRequest r:
                return new GetResponse(id, await _handler.GetAsync(r.Key, r.Consistency, r.Timeout, ct, r.MaxLag).ConfigureAwait(false));
            case ScanRequest r:
            {
                if (_scans.Count >= MaxOpenScans)
                    throw new RemoteOperationException("TooManyScans", ReplicationErrorKind.InvalidState, $"A connection may keep at most {MaxOpenScans} scans open.");
                var cursor = new Cursor(_handler.ScanAsync(r.Prefix, r.Consistency, r.Timeout, _closed.Token).GetAsyncEnumerator(_closed.Token), r.PageSize);
                if (!_scans.TryAdd(id, cursor))
                {
                    await cursor.DisposeAsync().ConfigureAwait(false);
                    throw new RemoteOperationException("ScanIdInUse", ReplicationErrorKind.InvalidArgument, $"Scan id {id} is already open on this connection.");
                }
                return await NextPageAsync(id, ClientRequestType.Scan, id, cursor, ct).ConfigureAwait(false);
            }
            case ScanNextRequest r:
                if (!_scans.TryGetValue(r.ScanId, out var open))
                    throw new RemoteOperationException("ScanNotFound", ReplicationErrorKind.NotFound, $"No open scan {r.ScanId} on this connection.");
                return await NextPageAsync(id, ClientRequestType.ScanNext, r.ScanId, open, ct).ConfigureAwait(false);
            case ScanCloseRequest r:
                if (_scans.TryRemove(r.ScanId, out var closing)) await closing.DisposeAsync().ConfigureAwait(false);
                return new AckResponse(id, ClientRequestType.ScanClose);
            case StatusRequest:
                return new StatusResponse(id, _handler.GetStatus());
            case WaitForLeadersRequest r:
                return new ShardsResponse(id, await _handler.WaitForLeadersAsync(r.Shard, r.Timeout, ct).ConfigureAwait(false));
            case StopNodeRequest r:
            {
                // Not cancelled by this connection closing: stopping the node this client is connected to closes the
                // connection mid-stop, and the stop must still finish. That node answers from inside its stop, before
                // it closes its connections (IClientRequestHandler.StopNodeAsync), and not again after.
                var ack = new AckResponse(id, ClientRequestType.StopNode);
                bool answered = false;
                await _handler.StopNodeAsync(r.NodeId, r.Kill, async () =>
                {
                    await WriteResponseAsync(ack, _closed.Token).ConfigureAwait(false);
                    answered = true;
                }, CancellationToken.None).ConfigureAwait(false);
                return answered ? AnsweredAlready : ack;
            }
            case StartNodeRequest r:
                await _handler.StartNodeAsync(r.NodeId, CancellationToken.None).ConfigureAwait(false);
                return new AckResponse(id, ClientRequestType.StartNode);
            case ForwardedRequest r:
                return await ForwardContext.RunForwardedAsync(() => HandleAsync(r.Inner, ct)).ConfigureAwait(false);
            case JoinRequest r:
            {
                var joined = await _handler.JoinAsync(r.Endpoint, r.Token, r.Role, r.Zone, ct).ConfigureAwait(false);
                return new JoinResponse(id, joined.NodeId, joined.ClusterId, joined.Metadata);
            }
            case ShardScanRequest r:
            {
                var page = await _handler.ScanShardAsync(r.Shard, r.RangeStart, r.RangeLast, r.Prefix, r.After, r.Limit, r.Consistency, r.Timeout, ct).ConfigureAwait(false);
                return new ScanPageResponse(id, ClientRequestType.ShardScan, 0, page.More, page.Keys);
            }
            case AdminRequest r:
            {
                var (json, blob) = await _handler.AdminAsync(r.Operation, r.TargetNode, r.Json, r.Blob, ct).ConfigureAwait(false);
                return new AdminResponse(id, json, blob);
            }
            default:
                throw new InvalidOperationException($"Unhandled request {request.Type}.");
        }
    }

    /// <summary>A response names the request type it answers; a forwarded request is answered as its inner request.</summary>
    private static ClientRequestType AnsweredType(ClientRequest request) => request is ForwardedRequest f ? f.Inner.Type : request.Type;

    /// <summary>Reads the next page from a cursor (one reader at a time per cursor); a finished or failed cursor is closed.</summary>
    private async Task<ClientResponse> NextPageAsync(long id, ClientRequestType type, long scanId, Cursor cursor, CancellationToken ct)
    {
        await cursor.Gate.WaitAsync(ct).ConfigureAwait(false);
        var keys = new List<ReplicationKey>();
        bool more = false;
        try
        {
            if (cursor.Disposed)
                throw new RemoteOperationException("ScanNotFound", ReplicationErrorKind.NotFound, $"Scan {scanId} was closed.");
            long bytes = 0;
            while (keys.Count < cursor.PageSize && bytes < PageBytes)
            {
                if (!await cursor.Enumerator.MoveNextAsync().ConfigureAwait(false)) break;
                var k = cursor.Enumerator.Current;
                keys.Add(k);
                bytes += (k.Key.Length + k.Value.Length) * 3L + 32;
            }
            more = keys.Count >= cursor.PageSize || bytes >= PageBytes;
        }
        finally
        {
            cursor.Gate.Release(); // on an exception "more" is still false: the failed cursor is closed
            if (!more && _scans.TryRemove(scanId, out var done)) await done.DisposeAsync().ConfigureAwait(false);
        }
        return new ScanPageResponse(id, type, scanId, more, keys);
    }

    private void Close()
    {
        try { _closed.Cancel(); } catch (ObjectDisposedException) { }
        foreach (var id in _scans.Keys)
            if (_scans.TryRemove(id, out var cursor)) _ = cursor.DisposeAsync().AsTask();
    }

    /// <summary>An open scan: its enumerator, used by one page read at a time.</summary>
    private sealed class Cursor(IAsyncEnumerator<ReplicationKey> enumerator, int pageSize) : IAsyncDisposable
    {
        public IAsyncEnumerator<ReplicationKey> Enumerator { get; } = enumerator;
        public int PageSize { get; } = pageSize;
        public SemaphoreSlim Gate { get; } = new(1, 1);
        public bool Disposed { get; private set; }

        public async ValueTask DisposeAsync()
        {
            // Waits for a page read in progress (cancelled by then if the session closed).
            await Gate.WaitAsync().ConfigureAwait(false);
            try
            {
                if (Disposed) return;
                Disposed = true;
                try { await Enumerator.DisposeAsync().ConfigureAwait(false); }
                catch (Exception) { /* a cursor of a stopped node: nothing left to release */ }
            }
            finally { Gate.Release(); }
        }
    }
}
