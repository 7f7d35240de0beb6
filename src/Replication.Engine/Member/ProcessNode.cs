using System.Net;
using System.Net.Sockets;
using Replication.Engine.Client;
using Replication.Engine.Cluster;
using Replication.Engine.Ring;
using Replication.Engine.Transport;

namespace Replication.Engine.Member;

/// <summary>
/// ONE node of a multi-process cluster, running in this process (Start-ReplicationNode -Path): its
/// <see cref="NodeHost"/> (the Raft groups of the shards placed on it, plus the metadata group every
/// node hosts), the client endpoint on the same listener (this object is the
/// <see cref="IClientRequestHandler"/> its client sessions call), and a router that forwards a
/// request to the shard's leader on another node when this node does not lead it.
/// <para>
/// The pieces, by file: start, identity and stop here; routing (ProcessNode.Routing.cs); the
/// control loop that keeps peers, hosted groups and Raft memberships in line with the replicated
/// metadata (ProcessNode.Control.cs); joining, both sides (ProcessNode.Join.cs); status
/// (ProcessNode.Status.cs). The metadata itself is <see cref="ClusterMetadata"/>.
/// </para>
/// <para>
/// Identity: node.json in the data folder (<see cref="NodeIdentity"/>: node id, cluster id, join
/// token; never the secret), so a restart with the same folder resumes the same node, and joining
/// twice with the same folder is idempotent. Thread-safe: every public member may be called from
/// any thread. As an <see cref="IReplicationCluster"/> it stands for the whole cluster seen from this
/// node (Mode Process): key operations, status and waits cover every node and shard.
/// </para>
/// </summary>
public sealed partial class ProcessNode : IReplicationCluster, IClientRequestHandler, INodeRequestHandler
{
    private readonly ProcessNodeOptions _options;
    private readonly NodeIdentity _identity;
    private readonly ClusterSecret _secret;
    private readonly NodeHost _host;
    private readonly PeerClients _peers;
    private readonly ShardMap _shardMap;
    private readonly CancellationTokenSource _background = new();
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly string _listenText;
    private readonly Storage.FolderLock _folderLock; // held for the node's whole life
    private volatile ClusterMetadata _metadata;
    private Task _controlLoop = Task.CompletedTask;
    private Task _statusLoop = Task.CompletedTask;
    private int _stopping;

    private ProcessNode(ProcessNodeOptions options, NodeIdentity identity, ClusterMetadata metadata, IPEndPoint listen, Storage.FolderLock folderLock)
    {
        _options = options;
        _folderLock = folderLock;
        _identity = identity;
        _secret = options.Secret;
        _metadata = metadata;
        _listenText = options.Listen;
        var info = identity.Cluster!;
        _shardMap = new ShardMap(info.ShardCount);
        _peers = new PeerClients(_secret, identity.ClusterId, EndpointOf, () => Name);
        _host = new NodeHost(new NodeHostOptions
        {
            NodeId = identity.NodeId,
            ClusterId = identity.ClusterId,
            DataPath = options.Path,
            ClusterKey = _secret.DeriveKey(identity.ClusterId),
            ClientHandler = this,
            Groups = new Dictionary<int, IReadOnlyList<int>>(), // added once the loop runs (AddGroupAsync), from disk or the metadata
            TickInterval = options.TickInterval,
            ElectionTicks = options.ElectionTicks,
            HeartbeatTicks = options.HeartbeatTicks,
            Log = options.Log,
        });
        ListenEndPoint = listen;
    }

    /// <summary>This node's id in its cluster.</summary>
    public int NodeId => _identity.NodeId;
    /// <summary>The endpoint this node listens on and other nodes dial ("host:port", as given).</summary>
    public string Endpoint => _listenText;
    public IPEndPoint ListenEndPoint { get; }
    /// <summary>Completes once the node stopped (Stop-ReplicationNode, StopAsync, or a fatal storage error).</summary>
    public Task Stopped => _stopped.Task;

    public string Name => _metadata.Cluster?.Name ?? _identity.Cluster!.Name;
    public Guid Id => _identity.ClusterId;
    public ClusterMode Mode => ClusterMode.Process;
    public int ShardCount => _identity.Cluster!.ShardCount;
    public int ReplicationFactor => _identity.Cluster!.ReplicationFactor;
    /// <summary>This node's data folder.</summary>
    public string? Path => _options.Path;
    public bool IsRunning => Volatile.Read(ref _stopping) == 0;
    public IReadOnlyList<string> Endpoints => _metadata.Nodes.OrderBy(n => n.Key).Select(n => n.Value.Endpoint).DefaultIfEmpty(Endpoint).ToArray();

    /// <summary>
    /// Runs one node in this process: founds a new cluster (no <see cref="ProcessNodeOptions.Join"/>, empty
    /// folder: node id 1, a fresh cluster id, sole voter of the metadata group and of every shard), joins
    /// one through a running node, or restarts the node the folder holds. Returns once the node listens.
    /// </summary>
    /// <exception cref="ClusterOptionsException">A bad -Listen/-Join (InvalidEndpoint), or a non-loopback -Listen without AllowRemote (ListenNotLoopback).</exception>
    /// <exception cref="NodePathInUseException">The folder holds a node of another cluster, or an embedded cluster.</exception>
    /// <exception cref="ListenEndpointInUseException">The listen endpoint cannot be bound.</exception>
    /// <exception cref="AuthenticationFailedException">The seed node does not share the secret.</exception>
    /// <exception cref="EndpointUnreachableException">The seed node did not answer.</exception>
    public static async Task<ProcessNode> StartAsync(ProcessNodeOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var listen = ParseListen(options.Listen, options.AllowRemote);
        if (options.Join is not null) ParseEndpoint(options.Join, "-Join");
        string path = System.IO.Path.GetFullPath(options.Path);
        options = options with { Path = path };
        // One owner per folder: a second opener is refused before anything in the folder is read or written.
        var folderLock = Storage.FolderLock.Acquire(path, Cluster.EmbeddedCluster.NodeLockFile);
        ProcessNode node;
        try
        {
            if (File.Exists(System.IO.Path.Combine(path, ClusterManifest.FileName)))
                throw new NodePathInUseException($"'{path}' holds an embedded cluster (cluster.json), not a node of a multi-process cluster. Give another -Path.") { Target = path };

            var identity = NodeIdentity.TryLoad(path);
            ClusterMetadata? joined = null;
            if (identity is { NodeId: > 0 })
            {
                if (options.Join is { } seed) await CheckSeedClusterAsync(seed, options.Secret, identity, path, cancellationToken).ConfigureAwait(false);
            }
            else if (options.Join is null)
            {
                if (identity is not null)
                    throw new NodePathInUseException($"'{path}' holds a node whose join did not complete; start it again with -Join.") { Target = path };
                if (File.Exists(System.IO.Path.Combine(path, "raft.db")) || File.Exists(System.IO.Path.Combine(path, "state.db")))
                    throw new NodePathInUseException($"'{path}' holds Replication data but no node.json; it is not a node this version can resume. Give an empty -Path.") { Target = path };
                CheckRange(options.ShardCount, 1, ClusterOptions.MaxShardCount, "ShardCount");
                CheckRange(options.ReplicationFactor, 1, ClusterOptions.MaxNodeCount, "ReplicationFactor");
                var clusterId = Guid.NewGuid();
                identity = new NodeIdentity
                {
                    NodeId = 1,
                    ClusterId = clusterId,
                    JoinToken = Guid.NewGuid(),
                    Cluster = new ClusterInfo(clusterId, options.Name, options.ShardCount, options.ReplicationFactor, DateTimeOffset.UtcNow),
                };
                ProbeListen(listen);
                identity.Save(path);
            }
            else
            {
                ProbeListen(listen); // a node that cannot listen must not register itself
                identity ??= new NodeIdentity { JoinToken = Guid.NewGuid() };
                identity.Save(path); // the token first: a crash mid-join is answered with the same id next time
                var answer = await JoinThroughSeedAsync(options, identity, cancellationToken).ConfigureAwait(false);
                joined = ClusterMetadata.FromJson(answer.Metadata);
                identity = identity with { NodeId = answer.NodeId, ClusterId = answer.ClusterId, Cluster = joined.Cluster };
                identity.Save(path);
            }
            node = new ProcessNode(options, identity, joined ?? ClusterMetadata.Empty, listen, folderLock);
        }
        catch
        {
            folderLock.Dispose();
            throw;
        }
        try
        {
            await node.StartHostAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await node.StopAsync(kill: false).ConfigureAwait(false);
            throw;
        }
        return node;
    }

    private async Task StartHostAsync(CancellationToken ct)
    {
        try
        {
            await _host.StartAsync(ListenEndPoint, ct).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            throw new ListenEndpointInUseException($"Cannot listen on {Endpoint}: {e.Message}", e) { Target = Endpoint };
        }
        // The founder (node 1) founded every group with itself as sole voter; on a restart the stored
        // membership wins and the voters given here are ignored (NodeHost.AddGroupAsync).
        IReadOnlyList<int>? founding = NodeId == 1 ? new[] { 1 } : null;
        await _host.AddGroupAsync(ClusterMetadata.MetadataGroup, founding).ConfigureAwait(false);
        RefreshMetadata(force: true);
        var metadata = _metadata;
        for (int shard = 0; shard < ShardCount; shard++)
            if (metadata.ReplicasOf(shard).Contains(NodeId) || (founding is not null && metadata.Cluster is null))
                await _host.AddGroupAsync(shard, founding).ConfigureAwait(false);
        ApplyPeers(metadata);
        Log($"node {NodeId} of cluster '{Name}' ({Id}) listening on {Endpoint}");
        _controlLoop = Task.Run(() => ControlLoopAsync(_background.Token));
        _statusLoop = Task.Run(() => StatusLoopAsync(_background.Token));
    }

    /// <summary>Stops this node (cleanly, or as a crash would with <paramref name="kill"/>). Idempotent.</summary>
    public async Task StopAsync(bool kill)
    {
        if (Interlocked.Exchange(ref _stopping, 1) != 0)
        {
            await _stopped.Task.ConfigureAwait(false);
            return;
        }
        try
        {
            _background.Cancel();
            await Task.WhenAll(_controlLoop, _statusLoop).ConfigureAwait(false);
            await _host.StopAsync(kill).ConfigureAwait(false);
            await _peers.DisposeAsync().ConfigureAwait(false);
            Log($"node {NodeId} stopped");
        }
        finally
        {
            _folderLock.Dispose();
            _stopped.TrySetResult();
        }
    }

    public ValueTask DisposeAsync() => new(StopAsync(kill: false));

    /// <summary>Stops this node; with <paramref name="deleteData"/> its data folder is deleted too (the other nodes keep running).</summary>
    public async Task RemoveAsync(bool deleteData)
    {
        await StopAsync(kill: false).ConfigureAwait(false);
        if (deleteData && Directory.Exists(_options.Path))
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(_options.Path, recursive: true);
        }
    }

    private void ThrowIfStopped()
    {
        if (!IsRunning) throw new ClusterNotRunningException(Name);
    }

    private void Log(string message)
    {
        try { _options.Log?.Invoke(message); }
        catch (Exception) { /* a failing logger must not take the node down */ }
    }

    private string? EndpointOf(int node) => _metadata.Nodes.TryGetValue(node, out var entry) ? entry.Endpoint : null;

    // ---- start-up checks ----

    private static IPEndPoint ParseListen(string listen, bool allowRemote)
    {
        var endpoint = ParseEndpoint(listen, "-Listen");
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

    /// <summary>Fails early (before joining) when the endpoint cannot be bound.</summary>
    private static void ProbeListen(IPEndPoint listen)
    {
        try
        {
            var probe = new TcpListener(listen);
            probe.Start();
            probe.Stop();
        }
        catch (SocketException e)
        {
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
