using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Replication.Engine.Client;
using Replication.Engine.Raft;
using Replication.Engine.Security;

namespace Replication.Engine.Transport;

/// <summary>
/// Node-to-node Raft transport over TCP (protocol in docs/wire-protocol.md). One outbound
/// connection per peer, dialled lazily and shared by every Raft group, and a second one (the snapshot lane) once a
/// snapshot is sent to that peer (<see cref="Send"/>); one inbound connection per dialled connection of a peer. Delivery is best effort: messages may be lost (queue overflow, peer down,
/// connection lost mid-write), which Raft tolerates; messages on one connection stay in order.
/// <para>
/// Thread-safe: every public member may be called from any thread, concurrently.
/// <see cref="Send"/> never blocks and never throws for network reasons, so the Raft loop can
/// call it freely; peer failures show up only in <see cref="Stats"/> and the log.
/// </para>
/// <para>
/// Receiving: each inbound connection runs its own reader task, which validates the peer's
/// Hello, then decodes frames and calls the <c>onReceive</c> callback for every message
/// addressed to this node, on that task. The callback therefore may run concurrently for
/// different peers, must be fast and must not block (hand the message to a queue); while it
/// runs, that peer's connection is not read. An exception from it is logged and the
/// connection goes on. It is never called after <see cref="DisposeAsync"/> has completed, and
/// it must not itself await <see cref="DisposeAsync"/> (that waits for the reader task).
/// </para>
/// <para>
/// Security (<see cref="TransportSecurity"/>): every connection, node or client, inbound or
/// outbound, must complete the handshake of this transport's mode before any other frame is
/// accepted from it or sent to it: the HMAC challenge-response with the cluster key (shared-secret
/// mode, not encrypted), or TLS 1.3 with certificates of the cluster CA, both sides (TLS mode; a
/// node Hello needs a node certificate, and the dialer needs the listener's certificate to name the
/// address it dialled). In TLS mode each new connection uses the certificate files as they are at
/// that moment (rotation: <see cref="CertificateSource"/>). A client (Hello node id 0) is then served
/// by a client session (Client/ClientSession.cs) that calls the <see cref="IClientRequestHandler"/>;
/// without one, clients are refused.
/// </para>
/// <para>
/// A peer that violates the protocol (bad frame, bad Hello, wrong cluster id, wrong or missing
/// proof, refused certificate, failed TLS handshake, the other security mode, no handshake in time) gets its connection closed, logged and counted in
/// <see cref="TransportStats.ConnectionsRejected"/>; every other connection is unaffected.
/// </para>
/// </summary>
public sealed partial class TcpTransport : IAsyncDisposable
{
    /// <summary>Messages queued per peer before the oldest are dropped (see PeerSender for why oldest).</summary>
    public const int PeerQueueCapacity = 4096;

    private readonly int _nodeId;
    private readonly Guid _clusterId;
    private readonly IPEndPoint _listen;
    private readonly Action<RaftMessage> _onReceive;
    private readonly Action<string>? _log;
    private readonly HelloFrame _hello;
    private readonly TransportSecurity _security;
    private readonly ClusterKey? _key; // the shared-secret mode's key for this cluster; null in TLS mode
    private readonly IClientRequestHandler? _clientHandler;
    private readonly TransportCounters _counters = new();
    private readonly CancellationTokenSource _shutdown = new();
    private readonly ConcurrentDictionary<int, PeerSender> _peers = new();
    /// <summary>
    /// Per peer, the snapshot lane: a second connection, dialled at the first snapshot chunk to that peer, that carries
    /// only <see cref="MessageType.SnapshotChunk"/> messages (see <see cref="Send"/>). Added under _gate.
    /// Its threads (the sender's, and the reader of the peer's inbound lane) run at the normal priority: a chunk costs them
    /// a copy and a CRC, not SQLite work (the heavy parts, reading rows and storing them, lower their own threads). At the
    /// lowest priority (nice 19) both waited for a core behind every busy thread of a loaded machine: ring bench, a file per
    /// shard, 6 runs of each alternated at load 3-8 (2026-12-02): 40 MB images streamed in 133-176 ms against 171-431 ms,
    /// moves took 0.69-1.21 s against 1.08-1.65 s, and the writes' p99 during them was 1.85-2.89x idle against 1.92-4.74x.
    /// </summary>
    private readonly ConcurrentDictionary<int, PeerSender> _bulk = new();
    private readonly List<Task> _retiredSenders = new(); // guarded by _gate
    private readonly object _gate = new();
    private TcpListener? _listener;
    private IPEndPoint? _localEndPoint;
    private Task _acceptLoop = Task.CompletedTask;
    private volatile bool _disposed;

    /// <param name="nodeId">This node's id: the sender id in its Hello, and the only <c>To</c> it accepts.</param>
    /// <param name="clusterId">Only peers with the same cluster id are accepted.</param>
    /// <param name="listen">Address to listen on; port 0 picks an ephemeral port (see <see cref="LocalEndPoint"/>).</param>
    /// <param name="onReceive">Called for each received message; see the class remarks for its threading contract.</param>
    /// <param name="key">The cluster key (from the cluster secret) every connection authenticates with, both ways (the shared-secret mode).</param>
    /// <param name="log">Receives connection-level events (connects, losses, rejections with their reason). Not called per message. Never receives the secret or key.</param>
    /// <param name="clientHandler">Serves authenticated client connections; null = this node refuses clients.</param>
    public TcpTransport(int nodeId, Guid clusterId, ClusterKey key, IPEndPoint listen, Action<RaftMessage> onReceive, Action<string>? log = null,
        IClientRequestHandler? clientHandler = null)
        : this(nodeId, clusterId, TransportSecurity.FromKey(key ?? throw new ArgumentNullException(nameof(key)), clusterId), listen, onReceive, log, clientHandler)
    {
    }

    /// <param name="nodeId">This node's id: the sender id in its Hello, and the only <c>To</c> it accepts.</param>
    /// <param name="clusterId">Only peers with the same cluster id are accepted.</param>
    /// <param name="security">How every connection is authenticated (and, with TLS, encrypted), both ways. In TLS mode it must
    /// hold a node certificate (<see cref="CertificateRole.Node"/>): the transport listens with it and dials its peers with it.</param>
    /// <param name="listen">Address to listen on; port 0 picks an ephemeral port (see <see cref="LocalEndPoint"/>).</param>
    /// <param name="onReceive">Called for each received message; see the class remarks for its threading contract.</param>
    /// <param name="log">Receives connection-level events (connects, losses, rejections with their reason, certificate reloads). Not called per message. Never receives a secret or key.</param>
    /// <param name="clientHandler">Serves authenticated client connections; null = this node refuses clients.</param>
    /// <exception cref="ArgumentException">Node id 0, or TLS with a client certificate.</exception>
    public TcpTransport(int nodeId, Guid clusterId, TransportSecurity security, IPEndPoint listen, Action<RaftMessage> onReceive, Action<string>? log = null,
        IClientRequestHandler? clientHandler = null)
    {
        ArgumentNullException.ThrowIfNull(security);
        ArgumentNullException.ThrowIfNull(listen);
        if (nodeId == HelloFrame.ClientNodeId) throw new ArgumentException("Node id 0 is reserved for clients.", nameof(nodeId));
        if (security.Role == CertificateRole.Client)
            throw new ArgumentException("A node's transport needs a node certificate (TransportSecurity.Tls(folder, CertificateRole.Node)), not a client's.", nameof(security));
        _security = security;
        _key = security.IsTls ? null : security.KeyFor(clusterId)
            ?? throw new ArgumentException($"The shared-secret key given is for another cluster than {clusterId}.", nameof(security));
        _clientHandler = clientHandler;
        ArgumentNullException.ThrowIfNull(onReceive);
        _nodeId = nodeId;
        _clusterId = clusterId;
        _listen = listen;
        _onReceive = onReceive;
        _log = log;
        _hello = new HelloFrame(nodeId, clusterId);
    }

    /// <summary>The address actually bound (with the real port when listening on port 0).</summary>
    /// <exception cref="InvalidOperationException">Before <see cref="StartAsync"/>.</exception>
    public IPEndPoint LocalEndPoint => _localEndPoint ?? throw new InvalidOperationException("The transport has not been started.");

    /// <summary>How this transport's connections are protected.</summary>
    public TransportSecurity Security => _security;

    /// <summary>A snapshot of the counters.</summary>
    public TransportStats Stats => _counters.Snapshot();

    /// <summary>
    /// Binds the listening socket and starts accepting. When this returns, <see cref="LocalEndPoint"/>
    /// is valid and peers can connect. <paramref name="cancellationToken"/> only cancels the start
    /// itself; the transport runs until <see cref="DisposeAsync"/>. Sending does not need a start.
    /// </summary>
    /// <exception cref="SocketException">The address cannot be bound (e.g. the port is in use).</exception>
    /// <exception cref="InvalidOperationException">Already started.</exception>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_listener is not null) throw new InvalidOperationException("The transport is already started.");
        }
        var listener = new TcpListener(_listen);
        try { listener.Start(ListenBacklog); }
        catch
        {
            listener.Stop();
            throw;
        }
        return StartAsync(listener, cancellationToken);
    }

    /// <summary>Pending connections the listener holds before they are accepted.</summary>
    internal const int ListenBacklog = 512;

    /// <summary>
    /// As <see cref="StartAsync(CancellationToken)"/>, on a listener the caller already bound and started (so the port it
    /// advertised is held from the first moment, never probed free and bound again later); the listener belongs to this
    /// transport from here on: disposing the transport stops it.
    /// </summary>
    /// <exception cref="InvalidOperationException">Already started, or the listener is not listening.</exception>
    public Task StartAsync(TcpListener listener, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(listener);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_listener is not null) throw new InvalidOperationException("The transport is already started.");
            if (!listener.Server.IsBound) throw new InvalidOperationException("The listener must be started (bound and listening) first.");
            _listener = listener;
            _localEndPoint = (IPEndPoint)listener.LocalEndpoint;
            _acceptLoop = Task.Run(() => AcceptLoopAsync(listener, _shutdown.Token));
        }
        Log($"listening on {_localEndPoint} ({_security})");
        return Task.CompletedTask;
    }

    /// <summary>
    /// Adds a peer, or changes its address. A changed address closes the current connection and
    /// the next message dials the new one; queued messages are kept. Same address: no effect.
    /// Ignored after disposal.
    /// </summary>
    public void SetPeer(int nodeId, IPEndPoint endPoint)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        lock (_gate)
        {
            if (_disposed) return;
            if (_peers.TryGetValue(nodeId, out var existing))
            {
                if (existing.EndPoint.Equals(endPoint)) return;
                Log($"peer {nodeId} moved from {existing.EndPoint} to {endPoint}");
                existing.UpdateEndPoint(endPoint);
                if (_bulk.TryGetValue(nodeId, out var bulk)) bulk.UpdateEndPoint(endPoint);
                return;
            }
            _peers[nodeId] = new PeerSender(nodeId, endPoint, _hello, _security, _counters, Log);
        }
    }

    /// <summary>Forgets a peer: its connection is closed and its queued messages are dropped. Unknown ids are ignored. Does not wait.</summary>
    public void RemovePeer(int nodeId)
    {
        lock (_gate)
        {
            if (!_peers.TryRemove(nodeId, out var sender)) return;
            sender.Stop();
            _retiredSenders.RemoveAll(t => t.IsCompleted);
            _retiredSenders.Add(sender.Loop);
            if (_bulk.TryRemove(nodeId, out var bulk))
            {
                bulk.Stop();
                _retiredSenders.Add(bulk.Loop);
            }
        }
    }

    /// <summary>
    /// Queues <paramref name="message"/> for the node of <see cref="RaftMessage.To"/> (<see cref="ReplicaIds.NodeOf"/>). Never blocks and
    /// never throws for network reasons: a message to an unknown peer, to an unreachable peer, or
    /// after disposal is dropped and counted. The message must not be mutated afterwards
    /// (RaftMessage is immutable; its Entries' data arrays must be left alone too).
    /// <para>
    /// Order is kept per peer and per lane: a snapshot's chunks (<see cref="MessageType.SnapshotChunk"/>) go on a connection of
    /// their own to the peer (the snapshot lane, dialled at the first chunk), every other message on the peer's Raft
    /// connection, so megabytes of chunks in flight never queue ahead of a heartbeat, an append or a vote on either node (on
    /// one connection, the sender's window of chunks waited in the same queue and the same socket as the Raft traffic, and
    /// the receiver's reading thread staged each chunk before it read the next heartbeat). Nothing orders a chunk against
    /// the Raft messages around it, and nothing needs to: a snapshot stream orders itself (NodeHost.Snapshots.cs).
    /// </para>
    /// </summary>
    /// <summary>
    /// Sends the messages of one pass of the node loop, as <see cref="Send"/> sends each, except that the messages to one
    /// peer are written together, on the calling thread, as one frame, when that peer's sender has nothing queued before
    /// them and the frame is small (<see cref="PeerSender.TrySendNow"/>); else they are queued for its sender thread. On this
    /// paravirtualized machine waking the sender thread costs about as much as the send itself, and a leader's pass at a
    /// steady write load is an append and a commit per follower: the wake-up was paid on every frame, on both sides.
    /// Order per peer is kept: a peer's messages are written in list order, and never before what was queued before them.
    /// </summary>
    public void SendAll(IReadOnlyList<RaftMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        Dictionary<int, List<RaftMessage>>? byPeer = null;
        foreach (var m in messages)
        {
            if (m.Type is MessageType.SnapshotChunk or MessageType.Liveness)
            {
                Send(m);
                continue;
            }
            int node = ReplicaIds.NodeOf(m.To);
            byPeer ??= new Dictionary<int, List<RaftMessage>>();
            if (!byPeer.TryGetValue(node, out var list)) byPeer[node] = list = new List<RaftMessage>();
            list.Add(m);
        }
        if (byPeer is null) return;
        foreach (var (node, list) in byPeer)
        {
            if (IsCutOff(node)) continue; // a drill's partition (TcpTransport.Faults.cs)
            if (_disposed || !_peers.TryGetValue(node, out var sender))
            {
                Interlocked.Add(ref _counters.DroppedUnroutable, list.Count);
                continue;
            }
            if (sender.TrySendNow(list)) continue;
            foreach (var m in list) sender.Enqueue(m);
        }
    }

    public void Send(RaftMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        int node = ReplicaIds.NodeOf(message.To); // a group's member id names its replica; the peer is its node
        if (IsCutOff(node)) return; // a drill's partition (TcpTransport.Faults.cs)
        if (!_disposed && _peers.TryGetValue(node, out var sender))
        {
            if (message.Type == MessageType.SnapshotChunk)
            {
                SnapshotLane(node, sender).Enqueue(message);
                return;
            }
            // A liveness signal (the node loop's, NodeHost.Liveness.cs) is written on this thread when nothing waits before it.
            if (message.Type == MessageType.Liveness && sender.TrySendNow([message])) return;
            sender.Enqueue(message);
        }
        else
            Interlocked.Increment(ref _counters.DroppedUnroutable);
    }

    /// <summary>The snapshot lane to <paramref name="node"/>, made at its first use (a stopped one, after the peer was removed or
    /// the transport disposed, drops what it is given, as the Raft lane does).</summary>
    private PeerSender SnapshotLane(int node, PeerSender raftLane)
    {
        if (_bulk.TryGetValue(node, out var lane)) return lane;
        lock (_gate)
        {
            if (_bulk.TryGetValue(node, out lane)) return lane;
            if (_disposed || !_peers.TryGetValue(node, out var current) || !ReferenceEquals(current, raftLane)) return raftLane; // stopped: drops it
            lane = new PeerSender(node, raftLane.EndPoint, _hello, _security, _counters, Log, lane: "snapshot");
            _bulk[node] = lane;
            return lane;
        }
    }

    /// <summary>
    /// Stops accepting, closes every connection and ends every task, promptly: nothing waits for a
    /// network timeout. Queued messages are dropped. Idempotent.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        PeerSender[] senders;
        Task[] retired;
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            senders = _peers.Values.Concat(_bulk.Values).ToArray();
            _peers.Clear();
            _bulk.Clear();
            retired = _retiredSenders.ToArray();
            _retiredSenders.Clear();
        }
        _shutdown.Cancel();
        _listener?.Stop();
        foreach (var sender in senders) sender.Stop();
        await _acceptLoop.ConfigureAwait(false); // after this no inbound connection can be added
        var inbound = _inbound.Values.ToArray();
        foreach (var connection in inbound) connection.Close();
        await Task.WhenAll(senders.Select(s => s.Loop).Concat(retired).Concat(inbound.Select(c => c.Handler))).ConfigureAwait(false);
        _shutdown.Dispose();
        Log("stopped");
    }

    private void Log(string message)
    {
        if (_log is null) return;
        try { _log($"node {_nodeId}: {message}"); }
        catch (Exception) { /* a failing logger must not take connections down */ }
    }
}
