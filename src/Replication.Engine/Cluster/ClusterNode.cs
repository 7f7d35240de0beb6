using System.Net;
using System.Net.Sockets;
using Replication.Engine.Client;
using Replication.Engine.Ring;
using Replication.Engine.Transport;

namespace Replication.Engine.Cluster;

/// <summary>
/// ONE node, the same object in every shape: alone in its process (Start-ReplicationNode -Path) or beside
/// others (an embedded cluster starts N of them in one process and forms the cluster through the very same
/// bootstrap, metadata group and join path; EmbeddedCluster.cs). It owns its data folder (an exclusive lock
/// for its whole life), its <see cref="NodeHost"/> (the Raft groups of the shards placed on it, plus the
/// metadata group every node hosts), the client endpoint on the same listener (this object is the
/// <see cref="IClientRequestHandler"/> its client sessions call), and a router that forwards a request to the
/// shard's leader on another node when this node does not lead it. Clients — a shell with only the endpoints
/// and the secret, or the embedded cluster's own client — reach every cluster the same way (Client/ClusterClient.cs).
/// <para>
/// The pieces, by file: start, identity and stop here; routing (ClusterNode.Routing.cs); the control loop
/// that keeps peers, hosted groups and Raft memberships in line with the replicated metadata
/// (ClusterNode.Control.cs); joining, both sides (ClusterNode.Join.cs); status (ClusterNode.Status.cs);
/// administrative operations (ClusterNode.Admin.cs): backups (ClusterNode.Backup.cs), replica comparison
/// (ClusterNode.Consistency.cs) and node rebuilds (ClusterNode.Rebuild.cs). The metadata itself is
/// <see cref="ClusterMetadata"/>.
/// </para>
/// <para>
/// Identity: node.json in the data folder (<see cref="NodeIdentity"/>: node id, cluster id, join token;
/// never the secret), so a restart with the same folder resumes the same node, and joining twice with the
/// same folder is idempotent. Thread-safe: every public member may be called from any thread.
/// </para>
/// </summary>
public sealed partial class ClusterNode : IClientRequestHandler, IAsyncDisposable
{
    private readonly NodeOptions _options;
    private volatile NodeIdentity _identity; // replaced (and saved) when the node carries out a rebuild
    private readonly NodeHost _host;
    private readonly PeerClients _peerClients;
    private readonly CancellationTokenSource _background = new();
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly string _listenText;
    private readonly Storage.FolderLock _folderLock; // held for the node's whole life
    private readonly TcpListener _listener; // bound at start (StartAsync); the transport accepts on it from StartHostAsync on
    private volatile ClusterMetadata _metadata;
    private Task _controlLoop = Task.CompletedTask;
    private Task _statusLoop = Task.CompletedTask;
    private int _stopping;

    private ClusterNode(NodeOptions options, NodeIdentity identity, ClusterMetadata metadata, TcpListener listener, Storage.FolderLock folderLock)
    {
        _options = options;
        _folderLock = folderLock;
        _identity = identity;
        _metadata = metadata;
        _listenText = options.Listen;
        var info = identity.Cluster!;
        _peerClients = new PeerClients(options.Security, identity.ClusterId, EndpointOf, () => Name);
        _host = new NodeHost(new NodeHostOptions
        {
            NodeId = identity.NodeId,
            ClusterId = identity.ClusterId,
            DataPath = options.Path,
            Security = options.Security,
            ClientHandler = this,
            TickInterval = options.TickInterval,
            ElectionTicks = options.ElectionTicks,
            HeartbeatTicks = options.HeartbeatTicks,
            Seed = options.Seed,
            SnapshotEntries = options.SnapshotEntries,
            SnapshotCatchUpEntries = options.SnapshotCatchUpEntries,
            SnapshotChunkBytes = options.SnapshotChunkBytes,
            StoreLayout = options.StoreLayout,
            StorageDecorator = options.StorageDecorator,
            SnapshotStagingMemory = options.SnapshotStagingMemory,
            Log = options.Log,
            VotersApplied = VotersApplied, // ClusterNode.Status.cs
            RecordEvent = (type, group, term, message) => RecordEvent(type, message, group, term),
        });
        _events = OpenEvents(options.Path); // ClusterNode.Events.cs
        _listener = listener;
        ListenEndPoint = (IPEndPoint)listener.LocalEndpoint;
    }

    /// <summary>This node's id in its cluster.</summary>
    public int NodeId => _identity.NodeId;
    /// <summary>The endpoint this node listens on and other nodes dial ("host:port").</summary>
    public string Endpoint => _listenText;
    public IPEndPoint ListenEndPoint { get; }
    /// <summary>Completes once the node stopped (Stop-ReplicationNode, StopAsync).</summary>
    public Task Stopped => _stopped.Task;

    public string Name => _metadata.Cluster?.Name ?? _identity.Cluster!.Name;
    public Guid Id => _identity.ClusterId;
    /// <summary>The shards and their hash ranges as this node's metadata replica has them (splits add shards).</summary>
    internal Ring.ShardRangeMap Map => _metadata.MapOr(_identity.Cluster!.ShardCount);
    public int ShardCount => Map.Count;
    /// <summary>Every shard's id, in ring order.</summary>
    internal IReadOnlyList<int> ShardIds => Map.Ranges.Select(r => r.Shard).ToArray();
    public int ReplicationFactor => _identity.Cluster!.ReplicationFactor;
    /// <summary>This node's data folder.</summary>
    public string Path => _options.Path;
    /// <summary>False once stopped, or once its storage failed (<see cref="FailureReason"/>): it then serves nothing.</summary>
    public bool IsRunning => Volatile.Read(ref _stopping) == 0 && _host.FailureReason is null;
    /// <summary>Why the node's loop stopped on its own (a storage error), or null.</summary>
    public string? FailureReason => _host.FailureReason;
    /// <summary>Every registered node's endpoint (this one's when the registry is not known yet).</summary>
    public IReadOnlyList<string> Endpoints => _metadata.Nodes.OrderBy(n => n.Key).Select(n => n.Value.Endpoint).DefaultIfEmpty(Endpoint).ToArray();
    /// <summary>A node's registry entry as this node's metadata replica has it (null if unknown).</summary>
    internal NodeEntry? RegistryEntry(int node) => _metadata.Nodes.TryGetValue(node, out var e) ? e : null;
    /// <summary>The cluster's identity and shape.</summary>
    internal ClusterInfo Info => _metadata.Cluster ?? _identity.Cluster!;
    /// <summary>The node host (engine tests look at its groups' published status).</summary>
    internal NodeHost Host => _host;

    /// <summary>
    /// Runs one node in this process: founds a new cluster (no <see cref="NodeOptions.Join"/>, empty
    /// folder: node id 1, a fresh cluster id, sole voter of the metadata group and of every shard), joins
    /// one through a running node, or restarts the node the folder holds. Returns once the node listens.
    /// </summary>
    /// <exception cref="ClusterOptionsException">A bad -Listen/-Join (InvalidEndpoint), or a non-loopback -Listen without AllowRemote (ListenNotLoopback).</exception>
    /// <exception cref="DataPathInUseException">Another node or cluster, in this process or another, has the folder open.</exception>
    /// <exception cref="NodePathInUseException">The folder holds a node of another cluster, or an embedded cluster.</exception>
    /// <exception cref="ListenEndpointInUseException">The listen endpoint cannot be bound.</exception>
    /// <exception cref="AuthenticationFailedException">The seed node does not share the secret.</exception>
    /// <exception cref="EndpointUnreachableException">The seed node did not answer.</exception>
    /// <exception cref="StorageCorruptException">The node's stores failed their checks; it holds no file open.</exception>
    public static async Task<ClusterNode> StartAsync(NodeOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        RaftTiming.Validate(options.TickInterval, options.ElectionTicks, options.HeartbeatTicks); // before the folder is touched
        var listen = ParseListen(options.Listen, options.AllowRemote);
        if (options.Join is not null) ParseEndpoint(options.Join, "-Join");
        string path = System.IO.Path.GetFullPath(options.Path);
        // One owner per folder: a second opener is refused before anything in the folder is read or written.
        var folderLock = Storage.FolderLock.Acquire(path, NodeLockFile);
        ClusterNode node;
        TcpListener? listener = null;
        // Binds the endpoint and keeps it bound (Listen); a port 0 becomes the port the OS gave, in the endpoint this node
        // registers and advertises. Called where the endpoint is first needed: before a founder saves its identity, before a
        // joiner registers, before a restarted node opens its stores.
        void Bind()
        {
            listener = Listen(listen);
            if (listen.Port != 0) return;
            listen = (IPEndPoint)listener.LocalEndpoint;
            options = options with { Listen = $"{options.Listen[..^2]}:{listen.Port}" };
        }
        try
        {
            options = options with { Path = path };
            if (File.Exists(System.IO.Path.Combine(path, ClusterManifest.FileName)))
                throw new NodePathInUseException($"'{path}' holds an embedded cluster (cluster.json), not a node. Give another -Path.") { Target = path };
            RemoveLeftovers(path, options.DiscardStores);

            var identity = NodeIdentity.TryLoad(path);
            ClusterMetadata? joined = null;
            if (identity is { NodeId: > 0 })
            {
                options.ClaimName?.Invoke(identity.Cluster?.Name ?? options.Name);
                if (options.Join is { } seed) await CheckSeedClusterAsync(seed, options.Security, identity, path, cancellationToken).ConfigureAwait(false);
                Bind();
            }
            else if (options.Join is null)
            {
                if (identity is not null)
                    throw new NodePathInUseException($"'{path}' holds a node whose join did not complete; start it again with -Join.") { Target = path };
                if (File.Exists(System.IO.Path.Combine(path, "raft.db")) || File.Exists(System.IO.Path.Combine(path, "state.db"))
                    || Directory.Exists(System.IO.Path.Combine(path, Storage.KvStore.ShardFolderName)))
                    throw new NodePathInUseException($"'{path}' holds Replication data but no node.json; it is not a node this version can resume. Give an empty -Path.") { Target = path };
                if (options.Role == NodeRole.Learner)
                    throw new ClusterOptionsException(ClusterOptionsException.Invalid, "A cluster's founding node is a voter: a learner (-Role Learner) joins a running cluster with -Join.") { Target = path };
                CheckRange(options.ShardCount, 1, ClusterOptions.MaxShardCount, "ShardCount");
                CheckRange(options.ReplicationFactor, 1, ClusterOptions.MaxNodeCount, "ReplicationFactor");
                options.Settings.Validate();
                options.ClaimName?.Invoke(options.Name);
                var clusterId = options.ClusterId ?? Guid.NewGuid();
                identity = new NodeIdentity
                {
                    NodeId = 1,
                    ClusterId = clusterId,
                    JoinToken = Guid.NewGuid(),
                    Cluster = new ClusterInfo(clusterId, options.Name, options.ShardCount, options.ReplicationFactor, DateTimeOffset.UtcNow) { Settings = options.Settings },
                };
                Bind();
                identity.Save(path);
            }
            else
            {
                Bind(); // a node that cannot listen must not register itself
                if (options.ClaimName is { } claim) claim(await SeedClusterNameAsync(options, cancellationToken).ConfigureAwait(false));
                identity ??= new NodeIdentity { JoinToken = Guid.NewGuid() };
                identity.Save(path); // the token first: a crash mid-join is answered with the same id next time
                var answer = await JoinThroughSeedAsync(options, identity, cancellationToken).ConfigureAwait(false);
                joined = ClusterMetadata.FromJson(answer.Metadata);
                identity = identity with { NodeId = answer.NodeId, ClusterId = answer.ClusterId, Cluster = joined.Cluster };
                identity.Save(path);
            }
            node = new ClusterNode(options, identity, joined ?? ClusterMetadata.Empty, listener!, folderLock);
        }
        catch
        {
            listener?.Stop();
            folderLock.Dispose();
            throw;
        }
        try
        {
            await node.StartHostAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            node.NoteStartFailed(e);
            await node.StopAsync(kill: false).ConfigureAwait(false);
            throw;
        }
        node.NoteStarted();
        CodeWarmUp.Start(options.Log); // the first failover need not compile the framework's code it runs (CodeWarmUp.cs)
        return node;
    }

    /// <summary>The lock file of a node folder (<see cref="Storage.FolderLock"/>).</summary>
    internal const string NodeLockFile = "node.lock";

    /// <summary>Removes what a previous run left beside the stores (cold copies, uploads), and the stores themselves when asked.</summary>
    private static void RemoveLeftovers(string path, bool discardStores)
    {
        foreach (var dir in Directory.EnumerateDirectories(path))
        {
            string name = System.IO.Path.GetFileName(dir);
            if (name.StartsWith(ColdFolderPrefix, StringComparison.Ordinal) || name.StartsWith(UploadFolderPrefix, StringComparison.Ordinal))
                Directory.Delete(dir, recursive: true);
        }
        if (!discardStores) return;
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        foreach (var pattern in new[] { "raft.db*", "state.db*" })
            foreach (var file in Directory.EnumerateFiles(path, pattern)) File.Delete(file);
        // The shards folder is emptied, not removed: the rebuilt node keeps its layout (NodeHost.StatePath reads it from the folder).
        string shards = System.IO.Path.Combine(path, Storage.KvStore.ShardFolderName);
        if (Directory.Exists(shards))
            foreach (var file in Directory.EnumerateFiles(shards)) File.Delete(file);
    }

    /// <summary>
    /// False while <see cref="StartHostAsync"/> is still opening the groups this node's metadata and stores name. The node
    /// listens, and answers status polls, before that: its status then lists fewer shards than it holds, so its lag is not
    /// known (SelfNode). A learner restarted in CI showed Running with LagEntries 0 and no shards, and a runbook's wait for
    /// lag 0 ended before it held what was written while it was down.
    /// </summary>
    private volatile bool _groupsOpened;

    private async Task StartHostAsync(CancellationToken ct)
    {
        try
        {
            await _host.StartAsync(_listener, ct).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            throw new ListenEndpointInUseException($"Cannot listen on {Endpoint}: {e.Message}", e) { Target = Endpoint };
        }
        foreach (var (id, endpoint) in _identity.Peers) _peerHints.TryAdd(id, endpoint);
        if (_options.DiscardStores)
        {
            // Its stores are gone: it must not answer as the member it was. It hosts nothing until its rebuild has
            // taken it out of every group (ClusterNode.Rebuild.cs), then rejoins as a new replica.
            _awaitingRebuild = true;
            _groupsOpened = true; // it hosts nothing on purpose until rebuilt (Rebuilding says so)
            ApplyPeers(_metadata);
            Log($"node {NodeId} of cluster '{Name}' listening on {Endpoint} with its stores discarded: waiting to be rebuilt");
            _controlLoop = StartControlLoop(); // ClusterNode.Control.cs
            _statusLoop = Task.Run(() => StatusLoopAsync(_background.Token));
            return;
        }
        // The founder (node 1) founded every group with itself as sole voter; on a restart the stored
        // membership wins and the voters given here are ignored (NodeHost.AddGroupAsync).
        IReadOnlyList<int>? founding = NodeId == 1 ? new[] { 1 } : null;
        await _host.AddGroupAsync(ClusterMetadata.MetadataGroup, NodeId, founding).ConfigureAwait(false);
        RefreshMetadata(force: true);
        var metadata = _metadata;
        foreach (int shard in ShardIds)
            if (metadata.ReplicasOf(shard).Contains(NodeId) || (founding is not null && metadata.Cluster is null))
                await _host.AddGroupAsync(shard, metadata.MemberIdOf(shard, NodeId), founding).ConfigureAwait(false);
        // Every group the stores hold (split shards the metadata does not list yet, among others); what this node no
        // longer belongs to is dropped by the control loop.
        foreach (int group in await _host.StoredGroupsAsync().ConfigureAwait(false))
            await _host.AddGroupAsync(group, metadata.MemberIdOf(group, NodeId), bootstrapVoters: null).ConfigureAwait(false);
        _groupsOpened = true;
        ApplyPeers(metadata);
        // A storage failure stops the loop (NodeHost.Loop): the whole node stops then, as a crash would, so its
        // clients go to other nodes and its host (a process, an embedded cluster) sees it stopped and why.
        _ = _host.Exited.ContinueWith(_ => { if (_host.FailureReason is not null) _ = StopAsync(kill: false); }, TaskScheduler.Default);
        Log($"node {NodeId} of cluster '{Name}' ({Id}) listening on {Endpoint}");
        _controlLoop = StartControlLoop(); // ClusterNode.Control.cs
        _statusLoop = Task.Run(() => StatusLoopAsync(_background.Token));
        StartMaintenanceLoop(); // ClusterNode.Maintenance.cs
    }

    /// <summary>Stops this node (cleanly, or as a crash would with <paramref name="kill"/>). Idempotent.</summary>
    public Task StopAsync(bool kill) => StopAsync(kill, beforeDisconnect: null);

    /// <summary>As <see cref="StopAsync(bool)"/>; <paramref name="beforeDisconnect"/> runs once the node's loop has ended and
    /// before its listener and connections close (<see cref="NodeHost.StopAsync"/>). A second, concurrent stop only waits
    /// for the first: its step does not run.</summary>
    private async Task StopAsync(bool kill, Func<Task>? beforeDisconnect)
    {
        if (Interlocked.Exchange(ref _stopping, 1) != 0)
        {
            await _stopped.Task.ConfigureAwait(false);
            return;
        }
        try
        {
            NoteStopped(kill); // ClusterNode.Events.cs
            _background.Cancel();
            await Task.WhenAll(_controlLoop, _statusLoop, _maintenanceLoop).ConfigureAwait(false);
            await _host.StopAsync(kill, beforeDisconnect).ConfigureAwait(false);
            await _peerClients.DisposeAsync().ConfigureAwait(false);
            DisposeHeld();
            Log($"node {NodeId} stopped");
        }
        finally
        {
            _events.Dispose();
            _folderLock.Dispose();
            _stopped.TrySetResult();
        }
    }

    public ValueTask DisposeAsync() => new(StopAsync(kill: false));

    /// <summary>
    /// Where a node hosted in this process tells it where a sibling listens now (an embedded cluster whose
    /// nodes restarted on new ports): the next connection to that node dials there. The registry catches up
    /// when the sibling re-announces itself.
    /// </summary>
    internal void HintPeer(int node, string endpoint)
    {
        if (node == NodeId) return;
        _peerHints[node] = endpoint;
        ApplyPeers(_metadata);
    }

    private readonly System.Collections.Concurrent.ConcurrentDictionary<int, string> _peerHints = new();

    /// <summary>Refuses a request this node cannot serve because it is stopping (or its storage failed): it did nothing,
    /// so its client may send it to another node (RemoteOperationException.NodeStopping).</summary>
    private void ThrowIfStopped()
    {
        if (!IsRunning)
            throw new RemoteOperationException(RemoteOperationException.NodeStopping, ReplicationErrorKind.Unavailable,
                FailureReason is { } failure ? $"Node {NodeId} stopped after a storage failure: {failure}" : $"Node {NodeId} is stopping.");
}

    private void Log(string message)
    {
        try { _options.Log?.Invoke(message); }
        catch (Exception) { /* a failing logger must not take the node down */ }
    }

    /// <summary>Where node <paramref name="node"/> listens: a sibling's hint until the registry agrees with it, else the registry's.</summary>
    private string? EndpointOf(int node)
    {
        string? registered = _metadata.Nodes.TryGetValue(node, out var entry) ? entry.Endpoint : null;
        if (_peerHints.TryGetValue(node, out var hint))
        {
            if (hint != registered) return hint;
            _peerHints.TryRemove(node, out _);
        }
        return registered;
    }

    // ---- start-up checks ----

    private static IPEndPoint ParseListen(string listen, bool allowRemote)
    {
        // Port 0 (after an IP address only): the OS picks the port when the node binds it (Listen).
        var endpoint = listen.EndsWith(":0", StringComparison.Ordinal) && IPAddress.TryParse(listen[..^2], out var literal)
            ? new IPEndPoint(literal, 0)
            : ParseEndpoint(listen, "-Listen");
        IPAddress[] addresses = endpoint switch
        {
            IPEndPoint ip => new[] { ip.Address },
            DnsEndPoint dns => ResolveOrThrow(dns.Host, listen),
            _ => Array.Empty<IPAddress>(),
        };
        var address = addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? addresses.FirstOrDefault()
            ?? throw new ClusterOptionsException(InvalidEndpoint, $"-Listen '{listen}' resolves to no address.") { Target = listen };
        int port = endpoint is IPEndPoint p ? p.Port : ((DnsEndPoint)endpoint).Port;
        if (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any))
            throw new ClusterOptionsException(InvalidEndpoint, $"-Listen '{listen}' is a wildcard address; give the address other nodes should dial.") { Target = listen };
        if (!IPAddress.IsLoopback(address) && !allowRemote)
            throw new ClusterOptionsException(ListenNotLoopback,
                $"-Listen '{listen}' is not a loopback address; pass -AllowRemote to let other machines reach this node (every connection still needs the cluster secret).") { Target = listen };
        return new IPEndPoint(address, port);
    }

    private static IPAddress[] ResolveOrThrow(string host, string listen)
    {
        try { return Dns.GetHostAddresses(host); }
        catch (SocketException e) { throw new ClusterOptionsException(InvalidEndpoint, $"-Listen '{listen}': {e.Message}") { Target = listen }; }
    }

    private static EndPoint ParseEndpoint(string text, string parameter)
    {
        try { return ClientConnection.ParseEndpoint(text); }
        catch (FormatException e) { throw new ClusterOptionsException(InvalidEndpoint, $"{parameter}: {e.Message}") { Target = text }; }
    }

    /// <summary>
    /// Binds <paramref name="listen"/> (port 0: a port the OS picks) and listens, so the endpoint is this node's from here
    /// on: its transport accepts on this very listener once the node runs (connections that arrive before wait in the
    /// backlog). Bug fixed: a free port was probed, released and bound again later, and a port 0 was a port probed free
    /// the same way; another process (or an outgoing connection given that port) could take it in between.
    /// </summary>
    /// <exception cref="ListenEndpointInUseException">The endpoint cannot be bound.</exception>
    private static TcpListener Listen(IPEndPoint listen)
    {
        var listener = new TcpListener(listen);
        try
        {
            listener.Start(TcpTransport.ListenBacklog);
            return listener;
        }
        catch (SocketException e)
        {
            listener.Stop();
            throw new ListenEndpointInUseException($"Cannot listen on {listen}: {e.Message}", e) { Target = listen.ToString() };
        }
    }

    private static void CheckRange(int value, int min, int max, string what)
    {
        if (value < min || value > max)
            throw new ClusterOptionsException(ClusterOptionsException.Invalid, $"{what} must be between {min} and {max}; got {value}.");
    }

    /// <summary>ErrorId of a -Listen/-Join that is not host:port.</summary>
    public const string InvalidEndpoint = "InvalidEndpoint";
    /// <summary>ErrorId of a non-loopback -Listen without -AllowRemote.</summary>
    public const string ListenNotLoopback = "ListenNotLoopback";

    public override string ToString() => $"node {NodeId} of {Name} ({Endpoint})";
}
