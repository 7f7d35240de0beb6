using System.Net;
using Replication.Engine.Ring;

namespace Replication.Engine.Cluster;

/// <summary>
/// A cluster whose nodes all run inside this process, each with its own data folder, SQLite
/// files and loopback TCP endpoint (nodes talk over real sockets even here, so the embedded and
/// multi-process shapes exercise the same code). Created or reopened by <see cref="StartAsync"/>.
/// Thread-safe. Routing of reads and writes to shard leaders lives in EmbeddedCluster.Routing.cs.
/// </summary>
public sealed partial class EmbeddedCluster : IReplicationCluster
{
    private readonly ClusterManifest _manifest;
    private readonly ClusterOptions _options;
    private readonly NodeHost?[] _nodes; // index = node id - 1; null = stopped
    private readonly System.Collections.Concurrent.ConcurrentDictionary<int, string> _startFailures = new(); // why a node refused to start
    private readonly SemaphoreSlim _admin = new(1, 1);
    private readonly ShardMap _shardMap;
    private readonly Placement _placement;
    private readonly Storage.FolderLock _folderLock; // the cluster folder's, held until removed
    private readonly Storage.FolderLock?[] _nodeLocks; // each running node's folder
    private volatile bool _removed;

    private EmbeddedCluster(ClusterOptions options, ClusterManifest manifest, Storage.FolderLock folderLock)
    {
        _options = options;
        _folderLock = folderLock;
        _nodeLocks = new Storage.FolderLock?[manifest.NodeCount];
        _manifest = manifest;
        _nodes = new NodeHost?[manifest.NodeCount];
        _shardMap = new ShardMap(manifest.ShardCount);
        _placement = new Placement(manifest.Placement);
    }

    public string Name => _options.Name;
    public Guid Id => _manifest.Id;
    public ClusterMode Mode => ClusterMode.Embedded;
    public int ShardCount => _manifest.ShardCount;
    public int ReplicationFactor => _manifest.ReplicationFactor;
    public string? Path => _options.Path;
    public bool IsRunning => !_removed;
    public IReadOnlyList<string> Endpoints => _nodes.Where(n => n?.EndPoint is not null).Select(n => n!.EndPoint!.ToString()).ToArray();

    /// <summary>
    /// Creates the cluster in <see cref="ClusterOptions.Path"/>, or reopens the one stored there, and
    /// starts every node. Returns once all nodes listen; leaders are elected shortly after
    /// (see <see cref="WaitForLeadersAsync"/>).
    /// </summary>
    public static async Task<EmbeddedCluster> StartAsync(ClusterOptions options, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(options.Path)) throw new ClusterOptionsException(ClusterOptionsException.Invalid, "A cluster needs a data folder.");
        // One owner per folder: refused before anything in it is read or written.
        var folderLock = Storage.FolderLock.Acquire(options.Path, ClusterLockFile);
        EmbeddedCluster cluster;
        try
        {
            cluster = new EmbeddedCluster(options, LoadOrCreateManifest(options), folderLock);
        }
        catch
        {
            folderLock.Dispose();
            throw;
        }
        var manifest = cluster._manifest;
        try
        {
            StorageCorruptException? corrupt = null;
            for (int id = 1; id <= manifest.NodeCount; id++)
            {
                try
                {
                    await cluster.StartNodeCoreAsync(id, cancellationToken).ConfigureAwait(false);
                }
                catch (StorageCorruptException ex)
                {
                    // One damaged replica must not keep the cluster down: it stays stopped, says why
                    // (Get-ReplicationNode StateReason), and serves nothing; its peers go on.
                    corrupt = ex;
                }
            }
            if (cluster._nodes.All(n => n is null)) throw corrupt!;
        }
        catch
        {
            await cluster.RemoveAsync(deleteData: false).ConfigureAwait(false);
            throw;
        }
        return cluster;
    }

    /// <summary>The lock file of a cluster folder (<see cref="Storage.FolderLock"/>); a node folder's is <see cref="NodeLockFile"/>.</summary>
    internal const string ClusterLockFile = "cluster.lock";
    internal const string NodeLockFile = "node.lock";

    private static ClusterManifest LoadOrCreateManifest(ClusterOptions o)
    {
        if (string.IsNullOrWhiteSpace(o.Name)) throw new ClusterOptionsException(ClusterOptionsException.Invalid, "A cluster needs a name.");
        if (string.IsNullOrWhiteSpace(o.Path)) throw new ClusterOptionsException(ClusterOptionsException.Invalid, "A cluster needs a data folder.");
        CheckRange(o.NodeCount, 1, ClusterOptions.MaxNodeCount, "NodeCount");
        CheckRange(o.ShardCount, 1, ClusterOptions.MaxShardCount, "ShardCount");
        CheckRange(o.ReplicationFactor, 1, ClusterOptions.MaxNodeCount, "ReplicationFactor");
        CheckRange(o.SnapshotEntries, 1, int.MaxValue, "SnapshotEntries");
        CheckRange(o.SnapshotCatchUpEntries, 0, int.MaxValue, "SnapshotCatchUpEntries");
        CheckRange(o.SnapshotChunkBytes, 64, 8 << 20, "SnapshotChunkBytes");

        var stored = ClusterManifest.TryLoad(o.Path);
        if (stored is not null)
        {
            Mismatch(o.NodeCount, stored.NodeCount, "NodeCount");
            Mismatch(o.ShardCount, stored.ShardCount, "ShardCount");
            Mismatch(o.ReplicationFactor, stored.ReplicationFactor, "ReplicationFactor");
            return stored;
        }

        int nodes = o.NodeCount ?? ClusterOptions.DefaultNodeCount;
        int shards = o.ShardCount ?? ClusterOptions.DefaultShardCount;
        int rf = o.ReplicationFactor ?? Math.Min(ClusterOptions.DefaultReplicationFactor, nodes);
        if (rf > nodes)
            throw new ClusterOptionsException(ClusterOptionsException.Invalid, $"ReplicationFactor {rf} exceeds NodeCount {nodes}: each replica needs its own node.");
        var placement = Placement.RoundRobin(nodes, shards, rf);
        var manifest = new ClusterManifest
        {
            Id = Guid.NewGuid(),
            Name = o.Name,
            NodeCount = nodes,
            ShardCount = shards,
            ReplicationFactor = rf,
            Placement = Enumerable.Range(0, shards).Select(s => placement.ReplicasOf(s).ToArray()).ToArray(),
        };
        manifest.Save(o.Path);
        return manifest;

        void Mismatch(int? asked, int stored, string what)
        {
            if (asked is int a && a != stored)
                throw new ClusterOptionsException(ClusterOptionsException.PathMismatch,
                    $"The cluster stored in '{o.Path}' has {what} {stored}, not {a}. Omit {what} to reopen it as it is.");
        }

        static void CheckRange(int? value, int min, int max, string what)
        {
            if (value is int v && (v < min || v > max))
                throw new ClusterOptionsException(ClusterOptionsException.Invalid, $"{what} must be between {min} and {max}; got {v}.");
        }
    }

    private NodeHostOptions NodeOptions(int id) => new()
    {
        NodeId = id,
        ClusterId = _manifest.Id,
        DataPath = System.IO.Path.Combine(_options.Path, $"node-{id}"),
        Groups = _placement.ShardsOn(id).ToDictionary(s => s, s => _placement.ReplicasOf(s)),
        TickInterval = _options.TickInterval,
        ElectionTicks = _options.ElectionTicks,
        HeartbeatTicks = _options.HeartbeatTicks,
        Seed = _options.Seed,
        SnapshotEntries = _options.SnapshotEntries,
        SnapshotCatchUpEntries = _options.SnapshotCatchUpEntries,
        SnapshotChunkBytes = _options.SnapshotChunkBytes,
        ClusterKey = Key,
        ClientHandler = this,
        StorageDecorator = _options.StorageDecorator,
    };

    /// <summary>The running host of node <paramref name="id"/>, or null when stopped (for engine tests).</summary>
    internal NodeHost? Host(int id) => _nodes[id - 1];

    private async Task StartNodeCoreAsync(int id, CancellationToken cancellationToken)
    {
        if (_nodes[id - 1] is { } existing)
        {
            if (existing.IsRunning) return;
            // Its loop stopped itself after a storage error: release its files, then start afresh.
            _nodes[id - 1] = null;
            await existing.StopAsync(kill: false).ConfigureAwait(false);
        }
        _nodeLocks[id - 1] ??= Storage.FolderLock.Acquire(NodeOptions(id).DataPath, NodeLockFile);
        var host = new NodeHost(NodeOptions(id));
        int port = _manifest.Ports.TryGetValue(id.ToString(), out int p) ? p : 0;
        _startFailures.TryRemove(id, out _);
        try
        {
            await host.StartAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken).ConfigureAwait(false);
        }
        catch (StorageCorruptException ex)
        {
            _startFailures[id] = ex.Message;
            throw;
        }
        catch (System.Net.Sockets.SocketException) when (port != 0)
        {
            // The old port is taken by something else now: take a fresh one and tell the peers.
            await host.StopAsync(kill: true).ConfigureAwait(false);
            host = new NodeHost(NodeOptions(id));
            await host.StartAsync(new IPEndPoint(IPAddress.Loopback, 0), cancellationToken).ConfigureAwait(false);
        }
        _nodes[id - 1] = host;
        _manifest.Ports[id.ToString()] = host.EndPoint!.Port;
        _manifest.Save(_options.Path);
        foreach (var other in _nodes)
        {
            if (other is null || other == host) continue;
            other.SetPeer(id, host.EndPoint!);
            host.SetPeer(other.Id, other.EndPoint!);
        }
    }

    public async Task StartNodeAsync(int id, CancellationToken cancellationToken)
    {
        ThrowIfRemoved();
        CheckNodeId(id);
        await _admin.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfRemoved();
            await StartNodeCoreAsync(id, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _admin.Release();
        }
    }

    public async Task StopNodeAsync(int id, bool kill, CancellationToken cancellationToken)
    {
        ThrowIfRemoved();
        CheckNodeId(id);
        await _admin.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var host = _nodes[id - 1];
            if (host is null) return; // already stopped: stopping is idempotent
            _nodes[id - 1] = null;
            await host.StopAsync(kill).ConfigureAwait(false);
            ReleaseNodeLock(id);
        }
        finally
        {
            _admin.Release();
        }
    }

    public async Task RemoveAsync(bool deleteData)
    {
        await _admin.WaitAsync().ConfigureAwait(false);
        try
        {
            _removed = true;
            for (int i = 0; i < _nodes.Length; i++)
            {
                var host = _nodes[i];
                _nodes[i] = null;
                if (host is not null) await host.StopAsync(kill: false).ConfigureAwait(false);
                ReleaseNodeLock(i + 1);
            }
            _folderLock.Dispose();
            if (deleteData && Directory.Exists(_options.Path))
            {
                Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
                Directory.Delete(_options.Path, recursive: true);
            }
        }
        finally
        {
            _admin.Release();
        }
    }

    public ValueTask DisposeAsync() => _removed ? ValueTask.CompletedTask : new(RemoveAsync(deleteData: false));

    private void ReleaseNodeLock(int id)
    {
        _nodeLocks[id - 1]?.Dispose();
        _nodeLocks[id - 1] = null;
    }

    private void ThrowIfRemoved()
    {
        if (_removed) throw new ClusterNotRunningException(Name);
    }

    private void CheckNodeId(int id)
    {
        if (id < 1 || id > _nodes.Length) throw new NodeNotFoundException(id) { Target = id };
    }
}
