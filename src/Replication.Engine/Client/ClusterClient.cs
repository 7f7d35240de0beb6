using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Replication.Engine.Cluster;
using Replication.Engine.Security;
using Replication.Engine.Storage;
using Replication.Engine.Transport;

namespace Replication.Engine.Client;

/// <summary>
/// THE client of a cluster: every shape is reached through it, over the client protocol — a shell that has only
/// endpoints and the secret (Connect-ReplicationCluster, Mode Remote), the nodes an embedded cluster runs in this
/// process (<see cref="EmbeddedCluster"/> derives from it), a node started here with Start-ReplicationNode -Path
/// (<see cref="LocalNodeCluster"/>). Every member is a request to one node, which routes it to the right shard
/// leader or node (docs/wire-protocol.md, "Client protocol"); what differs between shapes is only who can start
/// and stop the nodes, which the derived classes add.
/// <para>
/// Connection: one authenticated connection at a time, to the first of <see cref="Endpoints"/> that
/// answers; requests are pipelined on it. When that node dies, the next request dials the other
/// endpoints in turn (the dead one last). Idempotent requests (reads, scans before their first page,
/// status, waits, node stop/start) are retried on the new connection; a write whose request was sent
/// but not answered is NOT retried: it is reported per write as <see cref="RemoteOperationException.OutcomeUnknown"/>.
/// Every request has a deadline: its own timeout plus <see cref="ClusterClientOptions.NetworkMargin"/>,
/// or <see cref="ClusterClientOptions.RequestTimeout"/>.
/// </para>
/// <para>
/// Errors: <see cref="AuthenticationFailedException"/>, <see cref="EndpointUnreachableException"/> (no
/// endpoint answered), and every engine error of the server passed through by its ErrorId
/// (<see cref="RemoteOperationException"/>). Thread-safe. Connections are protected as its
/// <see cref="TransportSecurity"/> says (TLS with a client certificate, or the shared secret, held
/// only as a redacted <see cref="ClusterSecret"/> and never sent).
/// </para>
/// </summary>
public partial class ClusterClient : IReplicationCluster
{
    private readonly TransportSecurity _security;
    private readonly ClusterClientOptions _options;
    private readonly SemaphoreSlim _connectGate = new(1, 1);
    private readonly object _endpointsGate = new();
    private List<string> _endpoints;
    private ClientConnection? _connection;
    private volatile bool _disposed;

    protected ClusterClient(IEnumerable<string> endpoints, TransportSecurity security, ClusterClientOptions? options)
    {
        _endpoints = endpoints.Distinct(StringComparer.OrdinalIgnoreCase).ToList();
        _security = security;
        _options = options ?? new ClusterClientOptions();
        Name = "";
    }

    public string Name { get; private set; }
    public Guid Id { get; private set; }
    public virtual ClusterMode Mode => ClusterMode.Remote;
    public int ShardCount { get; private set; }
    public int ReplicationFactor { get; private set; }
    /// <summary>The data folder of an embedded cluster (or of a node started here); null for a remote one.</summary>
    public virtual string? Path => null;
    public bool IsRunning => !_disposed;

    /// <summary>The endpoints this client knows: those it was given plus every node endpoint the cluster reported (refreshed by each status request).</summary>
    public virtual IReadOnlyList<string> Endpoints
    {
        get { lock (_endpointsGate) return _endpoints.ToArray(); }
    }

    /// <summary>The endpoint of the current connection, or null when none is open.</summary>
    public string? ConnectedEndpoint => _connection is { IsClosed: false } c ? c.Endpoint : null;

    /// <summary>
    /// Connects to the first endpoint that answers and authenticates, and reads the cluster's identity.
    /// <paramref name="name"/>: the name this session knows the cluster by (default: the cluster's own name).
    /// </summary>
    /// <exception cref="ClusterOptionsException">No endpoints, or one not of the form host:port (ErrorId InvalidEndpoint).</exception>
    /// <exception cref="AuthenticationFailedException">An endpoint answered but does not share the secret.</exception>
    /// <exception cref="EndpointUnreachableException">No endpoint answered.</exception>
    public static Task<ClusterClient> ConnectAsync(IReadOnlyList<string> endpoints, ClusterSecret secret, string? name = null,
        ClusterClientOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(secret);
        return ConnectAsync(endpoints, TransportSecurity.SharedSecret(secret), name, options, cancellationToken);
    }

    /// <summary>
    /// As the <see cref="ClusterSecret"/> overload, with connections protected as <paramref name="security"/> says:
    /// <c>TransportSecurity.Tls(folder, CertificateRole.Client)</c> for TLS with a client certificate.
    /// </summary>
    /// <exception cref="AuthenticationFailedException">An endpoint answered but the two sides do not accept each other
    /// (no shared secret; in TLS mode a certificate refused by either side, or a node without TLS).</exception>
    public static async Task<ClusterClient> ConnectAsync(IReadOnlyList<string> endpoints, TransportSecurity security, string? name = null,
        ClusterClientOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentNullException.ThrowIfNull(security);
        if (endpoints.Count == 0) throw new ClusterOptionsException(InvalidEndpoint, "Give at least one endpoint (host:port).");
        foreach (var ep in endpoints)
        {
            try { ClientConnection.ParseEndpoint(ep ?? ""); }
            catch (FormatException e) { throw new ClusterOptionsException(InvalidEndpoint, e.Message); }
        }
        var cluster = new ClusterClient(endpoints, security, options);
        try
        {
            await cluster.InitializeAsync(name, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        return cluster;
    }

    /// <summary>Reads the cluster's identity and shape (the first status request); <paramref name="name"/> is the name this session uses.</summary>
    protected async Task InitializeAsync(string? name, CancellationToken cancellationToken)
    {
        var status = await StatusAsync(cancellationToken).ConfigureAwait(false);
        Id = status.Id;
        Name = string.IsNullOrEmpty(name) ? status.Name : name;
        ShardCount = status.ShardCount;
        ReplicationFactor = status.ReplicationFactor;
        if (_connection is { } c) c.ClusterName = Name;
    }

    /// <summary>Adds endpoints to try (nodes of this process that started on new ports).</summary>
    protected void AddEndpoints(IEnumerable<string> endpoints)
    {
        lock (_endpointsGate) _endpoints = _endpoints.Concat(endpoints).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
    }

    /// <summary>ErrorId of an endpoint that is not host:port.</summary>
    public const string InvalidEndpoint = "InvalidEndpoint";

    // ---- status ----

    public virtual IReadOnlyList<ReplicationNode> GetNodes() => Status().Nodes;

    public ReplicationNode GetNode(int id) =>
        GetNodes().FirstOrDefault(n => n.Id == id) ?? throw new NodeNotFoundException(id) { Target = id };

    public IReadOnlyList<ReplicationShard> GetShards() => Status().Shards;

    private ClusterStatus Status() => StatusAsync(CancellationToken.None).GetAwaiter().GetResult();

    /// <summary>The cluster's identity, nodes and shards now; also refreshes <see cref="Endpoints"/>.</summary>
    public async Task<ClusterStatus> StatusAsync(CancellationToken cancellationToken)
    {
        var response = (StatusResponse)await CallAsync(id => new StatusRequest(id), idempotent: true, _options.RequestTimeout, cancellationToken).ConfigureAwait(false);
        var status = response.Status;
        ShardCount = status.ShardCount; // grows when shards split
        LearnRoutes(status); // ClusterClient.Routing.cs
        lock (_endpointsGate)
            _endpoints = _endpoints.Concat(status.Nodes.Select(n => n.Endpoint).Concat(status.Endpoints))
                .Where(e => e.Length > 0).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
        if (Name.Length == 0) return status;
        return status with
        {
            Name = Name,
            Nodes = status.Nodes.Select(n => n with { Cluster = Name }).ToArray(),
            Shards = status.Shards.Select(s => s with { Cluster = Name }).ToArray(),
        };
    }

    // ---- nodes ----

    /// <summary>
    /// Stops node <paramref name="id"/> (through whichever node this client reaches; the request is idempotent, so it is sent
    /// again through another node when its connection breaks) and returns the node's status after the stop. A node asked to
    /// stop answers before it closes its connections (ClusterNode.StopNodeAsync). Should that answer still be lost (two stops
    /// of one node at once, a node of an older version) and no other node answer the request sent again, the stop is taken
    /// as done when the node's own endpoint now refuses connections: nothing listens there, so the node is not running (a
    /// paused or unreachable node does not refuse, and the error stands).
    /// </summary>
    public virtual async Task<ReplicationNode> StopNodeAsync(int id, bool kill, CancellationToken cancellationToken)
    {
        var before = await NodeStatusAsync(id, cancellationToken).ConfigureAwait(false);
        try
        {
            await CallAsync(c => new StopNodeRequest(c, id, kill), idempotent: true, _options.RequestTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (EndpointUnreachableException)
        {
            if (!await RefusesConnectionsAsync(before.Endpoint, cancellationToken).ConfigureAwait(false)) throw;
            // Stopped: see the summary.
        }
        return await StatusAfterStopAsync(before, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>One node's status now.</summary>
    /// <exception cref="NodeNotFoundException">No node has this id.</exception>
    protected async Task<ReplicationNode> NodeStatusAsync(int id, CancellationToken cancellationToken) =>
        (await StatusAsync(cancellationToken).ConfigureAwait(false)).Nodes.FirstOrDefault(n => n.Id == id) ?? throw new NodeNotFoundException(id) { Target = id };

    /// <summary>
    /// The status of a node just stopped: as the cluster reports it, or, when no node answers any more (it was the last one
    /// this client reaches), <paramref name="before"/> (its status before the stop) marked Stopped, leading nothing.
    /// </summary>
    protected async Task<ReplicationNode> StatusAfterStopAsync(ReplicationNode before, CancellationToken cancellationToken)
    {
        try
        {
            return await NodeStatusAsync(before.Id, cancellationToken).ConfigureAwait(false);
        }
        catch (EndpointUnreachableException)
        {
            return before with { State = NodeState.Stopped, StateReason = "stopped on request", StateSince = DateTimeOffset.UtcNow, ShardsLed = 0 };
        }
    }

    /// <summary>Whether <paramref name="endpoint"/> refuses a TCP connection now (nothing listens there); false on any other outcome.</summary>
    private async Task<bool> RefusesConnectionsAsync(string endpoint, CancellationToken cancellationToken)
    {
        EndPoint target;
        try { target = ClientConnection.ParseEndpoint(endpoint); }
        catch (FormatException) { return false; }
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bound.CancelAfter(_options.ConnectTimeout);
        try
        {
            await socket.ConnectAsync(target, bound.Token).ConfigureAwait(false);
            return false;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            return true;
        }
        catch (Exception e) when (e is SocketException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return false;
        }
    }

    public virtual async Task StartNodeAsync(int id, CancellationToken cancellationToken) =>
        await CallAsync(c => new StartNodeRequest(c, id), idempotent: true, _options.RequestTimeout, cancellationToken).ConfigureAwait(false);

    public async Task<IReadOnlyList<ReplicationShard>> WaitForLeadersAsync(int? shard, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var response = (ShardsResponse)await CallAsync(c => new WaitForLeadersRequest(c, shard, timeout), idempotent: true, timeout + _options.NetworkMargin, cancellationToken).ConfigureAwait(false);
        return response.Shards;
    }

    // ---- keys ----

    /// <summary>Largest encoded write request this client sends; a bigger batch becomes several requests.</summary>
    private const int MaxRequestBytes = 4 * 1024 * 1024;

    /// <summary>
    /// Sends the writes in requests of at most <see cref="MaxRequestBytes"/>, one series per node believed to lead the
    /// writes' shards (ClusterClient.Routing.cs), the series to different nodes at once; each write's result is that of
    /// the request that carried it. Writes of one key stay in one series, in their order.
    /// </summary>
    public async Task<IReadOnlyList<WriteResult>> WriteAsync(IReadOnlyList<KeyWrite> writes, WriteConcern concern, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        var results = new WriteResult?[writes.Count];
        var series = new Dictionary<string, List<int>>(StringComparer.OrdinalIgnoreCase);
        for (int i = 0; i < writes.Count; i++)
        {
            var w = writes[i];
            try
            {
                KvLimits.Validate(w.Key, w.Value); // invalid writes never travel (and the rest still go)
            }
            catch (InvalidKeyException e)
            {
                results[i] = new WriteResult(w, null, false, e);
                continue;
            }
            string route = RouteOf(w.Key) ?? "";
            if (!series.TryGetValue(route, out var positions)) series[route] = positions = new List<int>();
            positions.Add(i);
        }
        if (series.Count == 1)
            await SendSeriesAsync(series.Keys.First(), series.Values.First(), writes, results, concern, timeout, cancellationToken).ConfigureAwait(false);
        else if (series.Count > 1)
            await Task.WhenAll(series.Select(s => SendSeriesAsync(s.Key, s.Value, writes, results, concern, timeout, cancellationToken))).ConfigureAwait(false);
        return results!;
    }

    /// <summary>One node's series of writes (<paramref name="route"/> "": the ordinary path), in requests of at most <see cref="MaxRequestBytes"/>.</summary>
    private async Task SendSeriesAsync(string route, List<int> positions, IReadOnlyList<KeyWrite> writes, WriteResult?[] results, WriteConcern concern, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var batch = new List<int>();
        long bytes = 0;
        foreach (int i in positions)
        {
            var w = writes[i];
            long size = (w.Key.Length + (w.Value?.Length ?? 0)) * 3L + 32;
            if (batch.Count > 0 && bytes + size > MaxRequestBytes)
            {
                await SendWritesAsync(route, batch, writes, results, concern, timeout, cancellationToken).ConfigureAwait(false);
                batch = new List<int>();
                bytes = 0;
            }
            batch.Add(i);
            bytes += size;
        }
        if (batch.Count > 0) await SendWritesAsync(route, batch, writes, results, concern, timeout, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Sends one request of writes. Writes the node answered with NodeStopping (it was stopping and proposed
    /// nothing for them) are sent again through another node, a few times within the timeout; every other
    /// answer is final.
    /// </summary>
    private async Task SendWritesAsync(string route, List<int> positions, IReadOnlyList<KeyWrite> writes, WriteResult?[] results, WriteConcern concern, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + timeout;
        for (int attempt = 1; positions.Count > 0; attempt++)
        {
            var sent = positions.Select(p => writes[p]).ToArray();
            WriteResponse response;
            ClientConnection answered;
            try
            {
                ClientResponse r;
                // The server's deadline is the caller's, whichever attempt this is (a write sent again after NodeStopping gets what is left).
                (answered, r) = await CallWithConnectionAsync(c => new WriteRequest(c, sent, concern, Left(deadline)), idempotent: false, Left(deadline) + _options.NetworkMargin, ct,
                    attempt == 1 && route.Length > 0 ? route : null, sent.Select(w => w.Key).ToArray()).ConfigureAwait(false);
                response = (WriteResponse)r;
            }
            catch (RemoteOperationException e) when (e.ErrorId is RemoteOperationException.OutcomeUnknown or RemoteOperationException.RequestTimeout)
            {
                foreach (int p in positions) results[p] = new WriteResult(writes[p], null, false, new RemoteOperationException(e.ErrorId, e.Kind, e.Message) { Target = writes[p].Key });
                return;
            }
            if (response.Outcomes.Count != positions.Count)
                throw new RemoteOperationException("ProtocolViolation", ReplicationErrorKind.Corrupt, $"The node answered {response.Outcomes.Count} outcomes for {positions.Count} writes.");
            var again = new List<int>();
            for (int j = 0; j < positions.Count; j++)
            {
                var w = writes[positions[j]];
                var o = response.Outcomes[j];
                if (o.Error?.ErrorId == RemoteOperationException.NodeStopping && attempt < 4 && DateTime.UtcNow < deadline)
                {
                    again.Add(positions[j]);
                    continue;
                }
                results[positions[j]] = o.Error is { } error
                    ? new WriteResult(w, null, o.Existed, WithKey(error.ToException(), w.Key))
                    : new WriteResult(w, o.HasRecord && w.Value is not null ? new ReplicationKey(w.Key, w.Value, o.Version, o.Shard, o.Index) { Cluster = Name } : null, o.Existed, null);
            }
            if (again.Count > 0)
            {
                await answered.DisposeAsync().ConfigureAwait(false); // that node is going away: dial another
                RoutesStale();
            }
            positions = again;
        }
    }

    /// <summary>What is left until <paramref name="deadline"/> (at least a millisecond: a request's timeout is positive).</summary>
    private static TimeSpan Left(DateTime deadline)
    {
        var left = deadline - DateTime.UtcNow;
        return left > TimeSpan.FromMilliseconds(1) ? left : TimeSpan.FromMilliseconds(1);
    }

    private static ReplicationException WithKey(ReplicationException e, string key)
    {
        e.SetTarget(key);
        return e;
    }

    public async Task<ReplicationKey?> GetAsync(string key, ReadConsistency consistency, TimeSpan timeout, CancellationToken cancellationToken, long? maxLag = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        KvLimits.Validate(key, null);
        if (maxLag < 0) throw new ArgumentOutOfRangeException(nameof(maxLag), maxLag, "A lag bound counts entries: 0 or more.");
        // A read sent again (its node stopped answering, ClusterClient.RideThrough.cs) gives its new node only what is left of the timeout.
        var deadline = DateTime.UtcNow + timeout;
        var (_, r) = await CallWithConnectionAsync(c => new GetRequest(c, key, consistency, Left(deadline), maxLag), idempotent: true, timeout + _options.NetworkMargin, cancellationToken,
            consistency == ReadConsistency.Stale ? null : RouteOf(key), [key]).ConfigureAwait(false); // a stale read is served by the node asked
        var response = (GetResponse)r;
        return response.Key is null ? null : response.Key with { Cluster = Name };
    }

    /// <summary>
    /// Streams the keys page by page from one server-side cursor: the next page is asked for only when
    /// this one has been consumed. A connection lost before the first page is retried elsewhere; after
    /// it, the scan fails with ConnectionLost (resuming elsewhere could not keep the same read point).
    /// </summary>
    public async IAsyncEnumerable<ReplicationKey> ScanAsync(string prefix, ReadConsistency consistency, TimeSpan timeout,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        if (System.Text.Encoding.UTF8.GetByteCount(prefix) > KvLimits.MaxKeyBytes)
            throw new InvalidKeyException(InvalidKeyException.InvalidPrefix, $"A prefix longer than {KvLimits.MaxKeyBytes} UTF-8 bytes matches no key.") { Target = prefix };
        KvLimits.ValidatePrefix(prefix);
        var (connection, response) = await CallWithConnectionAsync(
            c => new ScanRequest(c, prefix, consistency, timeout, _options.ScanPageSize), idempotent: true, timeout + _options.NetworkMargin, cancellationToken).ConfigureAwait(false);
        var page = (ScanPageResponse)response;
        bool open = page.More;
        try
        {
            while (true)
            {
                foreach (var k in page.Keys) yield return k with { Cluster = Name };
                if (!page.More) break;
                page = (ScanPageResponse)await SendOnAsync(connection, c => new ScanNextRequest(c, page.ScanId), timeout + _options.NetworkMargin, cancellationToken).ConfigureAwait(false);
                open = page.More;
            }
        }
        finally
        {
            if (open && !connection.IsClosed)
            {
                // Abandoned early: free the server's cursor (best effort; the connection's end frees it too).
                try { await SendOnAsync(connection, c => new ScanCloseRequest(c, page.ScanId), _options.RequestTimeout, CancellationToken.None).ConfigureAwait(false); }
                catch (ReplicationException) { }
            }
        }
    }

    public virtual Task RemoveAsync(bool deleteData) =>
        throw new NotSupportedRemotelyException($"Cluster '{Name}' is remote: removing it would stop nodes this process does not run. Disconnect with Disconnect-ReplicationCluster (the cluster keeps running).");

    /// <summary>Closes the connection; the cluster itself keeps running. Idempotent.</summary>
    public virtual ValueTask DisposeAsync() => CloseAsync();

    /// <summary>Closes the connection and refuses further requests (ClusterNotRunning). Idempotent.</summary>
    protected async ValueTask CloseAsync()
    {
        _disposed = true;
        await _connectGate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_connection is { } c) await c.DisposeAsync().ConfigureAwait(false);
            _connection = null;
        }
        finally { _connectGate.Release(); }
        await CloseRoutedAsync().ConfigureAwait(false);
    }

    // ---- plumbing ----

    private async Task<ClientResponse> CallAsync(Func<long, ClientRequest> make, bool idempotent, TimeSpan timeout, CancellationToken ct) =>
        (await CallWithConnectionAsync(make, idempotent, timeout, ct).ConfigureAwait(false)).Response;

    /// <summary>
    /// Sends a request on the current connection (dialling one if needed), or first on the connection to
    /// <paramref name="route"/> (the node believed to lead the request's shard; ClusterClient.Routing.cs). A connection
    /// that breaks before the request was sent, or while an idempotent request waited, is replaced and the
    /// request retried (on the current connection), a bounded number of times within the deadline. A key request
    /// (<paramref name="routedKeys"/>) that waits is watched for a leader change (ClusterClient.RideThrough.cs).
    /// </summary>
    private async Task<(ClientConnection Connection, ClientResponse Response)> CallWithConnectionAsync(Func<long, ClientRequest> make, bool idempotent, TimeSpan timeout, CancellationToken ct,
        string? route = null, IReadOnlyList<string>? routedKeys = null)
    {
        ThrowIfDisposed();
        var deadline = DateTime.UtcNow + timeout;
        int attempts = Math.Max(3, Endpoints.Count * 2);
        for (int attempt = 1; ; attempt++)
        {
            var connection = (route is not null ? await RoutedConnectionAsync(route, ct).ConfigureAwait(false) : null)
                ?? await ConnectionAsync(ct).ConfigureAwait(false);
            route = null; // a retry takes the ordinary path, unless a watch names the new leader
            var sent = new SentFlag<bool>(false);
            var remaining = deadline - DateTime.UtcNow;
            if (remaining <= TimeSpan.Zero) remaining = TimeSpan.FromMilliseconds(1);
            try
            {
                long sentAt = System.Diagnostics.Stopwatch.GetTimestamp();
                var pending = connection.SendAsync(make, remaining, sent, ct);
                if (routedKeys is not null && await WatchLeaderAsync(connection, routedKeys, pending, sentAt, idempotent, deadline, ct).ConfigureAwait(false) is { } moved)
                {
                    // The node stopped answering (or, deposed, did not settle the write) and another leads now (ClusterClient.RideThrough.cs):
                    // a read goes to the new leader at once, a write is OutcomeUnknown.
                    _ = pending.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
                    if (!idempotent)
                        throw new RemoteOperationException(RemoteOperationException.OutcomeUnknown, ReplicationErrorKind.Unavailable,
                            $"{moved.Node} {(moved.Silent ? "stopped answering" : "lost its leadership and did not settle the write")} while it had the write, and node "
                            + $"{moved.Leader} ({moved.Endpoint}) leads shard {moved.Shard} now: the write may or may not have been applied (not sent again: it could apply twice).");
                    route = moved.Endpoint;
                    continue;
                }
                var response = await pending.ConfigureAwait(false);
                if (response is ErrorResponse { Error.ErrorId: RemoteOperationException.NodeStopping } && attempt < attempts && DateTime.UtcNow < deadline)
                {
                    // That node did nothing with it: whatever the request, another node may serve it.
                    await connection.DisposeAsync().ConfigureAwait(false);
                    RoutesStale();
                    continue;
                }
                if (response is ErrorResponse e) throw e.Error.ToException();
                return (connection, response);
            }
            catch (ConnectionLostException) when ((idempotent || !sent.Value) && attempt < attempts && DateTime.UtcNow < deadline)
            {
                RoutesStale();
                continue; // the next pass dials another endpoint
            }
            catch (ConnectionLostException lost)
            {
                throw idempotent || !sent.Value
                    ? new EndpointUnreachableException($"The connection to {lost.Endpoint} was lost and no other endpoint answered in time.")
                    : new RemoteOperationException(RemoteOperationException.OutcomeUnknown, ReplicationErrorKind.Unavailable,
                        $"The connection to {lost.Endpoint} was lost after the write was sent: it may or may not have been applied (not retried, a write is not idempotent).");
            }
            catch (TimeoutException)
            {
                throw new RemoteOperationException(idempotent ? RemoteOperationException.RequestTimeout : RemoteOperationException.OutcomeUnknown, ReplicationErrorKind.Timeout,
                    $"{connection.Endpoint} did not answer within {timeout.TotalSeconds:0.###} s{(idempotent ? "" : "; the write may or may not have been applied")}.");
            }
        }
    }

    /// <summary>Sends on a given connection (a scan's cursor lives there); no retry elsewhere.</summary>
    private static async Task<ClientResponse> SendOnAsync(ClientConnection connection, Func<long, ClientRequest> make, TimeSpan timeout, CancellationToken ct)
    {
        try
        {
            var response = await connection.SendAsync(make, timeout, new SentFlag<bool>(false), ct).ConfigureAwait(false);
            return response is ErrorResponse e ? throw e.Error.ToException() : response;
        }
        catch (ConnectionLostException lost)
        {
            throw new RemoteOperationException(RemoteOperationException.ConnectionLost, ReplicationErrorKind.Unavailable,
                $"The connection to {lost.Endpoint} was lost in the middle of a scan; run the scan again.");
        }
        catch (TimeoutException)
        {
            throw new RemoteOperationException(RemoteOperationException.RequestTimeout, ReplicationErrorKind.Timeout, $"{connection.Endpoint} did not answer within {timeout.TotalSeconds:0.###} s.");
        }
    }

    /// <summary>The open connection, or a new one to the first endpoint that answers (starting after the one that failed).</summary>
    private async Task<ClientConnection> ConnectionAsync(CancellationToken ct)
    {
        var current = _connection;
        if (current is { IsClosed: false }) return current;
        await _connectGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            ThrowIfDisposed();
            current = _connection;
            if (current is { IsClosed: false }) return current;
            string? failed = current?.Endpoint ?? _movedOff;
            if (current is not null) await current.DisposeAsync().ConfigureAwait(false);
            _connection = null;

            var candidates = Endpoints.ToList();
            if (failed is not null && candidates.Remove(failed)) candidates.Add(failed); // the one that just failed, last
            var silent = candidates.Where(Avoided).ToArray(); // and those found silent
            candidates = candidates.Except(silent).Concat(silent).ToList();
            var reasons = new List<string>();
            AuthenticationFailedException? authFailure = null;
            foreach (var endpoint in candidates)
            {
                try
                {
                    var connection = await ClientConnection.ConnectAsync(endpoint, _security, Id, _options.ConnectTimeout, ct).ConfigureAwait(false);
                    connection.ClusterName = Name;
                    _connection = connection;
                    return connection;
                }
                catch (AuthenticationFailedException e)
                {
                    authFailure ??= e;
                    reasons.Add($"{endpoint}: authentication failed");
                }
                catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ProtocolException
                    || (e is OperationCanceledException && !ct.IsCancellationRequested))
                {
                    reasons.Add($"{endpoint}: {(e is OperationCanceledException ? "no answer in time" : e.Message)}");
                }
            }
            if (authFailure is not null) throw authFailure;
            throw new EndpointUnreachableException($"None of the endpoints answered: {string.Join("; ", reasons)}.") { Target = string.Join(",", candidates) };
        }
        finally
        {
            _connectGate.Release();
        }
    }

    protected void ThrowIfDisposed()
    {
        if (_disposed) throw new ClusterNotRunningException(Name);
    }

    public override string ToString() => $"{Name} (remote: {string.Join(", ", Endpoints)})";
}
