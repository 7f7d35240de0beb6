using System.Collections.Concurrent;
using System.Diagnostics;
using Replication.Engine.Client;
using Replication.Engine.Transport;

namespace Replication.Engine.Cluster;

/// <summary>
/// A cluster whose nodes all run inside this process: N <see cref="ClusterNode"/>s — the very node a separate
/// process runs — each with its own folder, SQLite files and loopback endpoint, formed through the same
/// bootstrap, metadata group and join path as separate processes (node 1 founds the cluster, the others join
/// it), and reached through the same client (this class IS a <see cref="ClusterClient"/> of its own nodes, over
/// loopback with the cluster secret). What it adds is only what a process hosting nodes can do: start and stop
/// them (<see cref="StartNodeAsync"/> restarts a stopped one from its folder), and own the cluster folder.
/// <para>
/// The folder: cluster.json (<see cref="ClusterManifest"/>: id, name, node folders and their last ports) and one
/// sub-folder per node. An exclusive lock on the cluster folder (cluster.lock), and each node's on its own folder,
/// are held while the cluster runs, so a second opener anywhere is refused (DataPathInUse) before it touches
/// anything. Reopening a folder resumes its nodes; the name must be the recorded one (ClusterPathMismatch
/// otherwise: a different name almost always means a different folder was meant).
/// </para>
/// Thread-safe.
/// </summary>
public sealed partial class EmbeddedCluster : ClusterClient
{
    private readonly ClusterOptions _options;
    private readonly Security.TransportSecurity _security;
    private readonly Storage.FolderLock _folderLock;
    private readonly SemaphoreSlim _admin = new(1, 1);
    private readonly ConcurrentDictionary<int, ClusterNode> _nodes = new(); // by node id; a stopped node stays until restarted
    private readonly ConcurrentDictionary<int, string> _startFailures = new(); // why a node refused to start
    private ClusterManifest _manifest;
    private IReadOnlyList<ReplicationNode> _lastNodes = Array.Empty<ReplicationNode>();
    private volatile bool _removed;

    private EmbeddedCluster(ClusterOptions options, ClusterManifest manifest, Security.TransportSecurity security, Storage.FolderLock folderLock)
        : base(Array.Empty<string>(), security, new ClusterClientOptions())
    {
        _options = options;
        _manifest = manifest;
        _security = security;
        _folderLock = folderLock;
    }

    public override ClusterMode Mode => ClusterMode.Embedded;
    public override string? Path => _options.Path;
    /// <summary>The endpoints of the nodes running in this process.</summary>
    public override IReadOnlyList<string> Endpoints => _nodes.Values.Where(n => n.IsRunning).OrderBy(n => n.NodeId).Select(n => n.Endpoint).ToArray();

    /// <summary>The lock file of a cluster folder (<see cref="Storage.FolderLock"/>).</summary>
    internal const string ClusterLockFile = "cluster.lock";
    /// <summary>How long a new cluster may take to form (every node joined, every shard at its replication factor).</summary>
    private static readonly TimeSpan FormTimeout = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Creates the cluster in <see cref="ClusterOptions.Path"/>, or reopens the one stored there, and starts every
    /// node. A new cluster returns once it is formed (every node joined, every shard has its replicas, and the metadata group its voters); a
    /// reopened one once its nodes listen (leaders follow shortly: <see cref="IReplicationCluster.WaitForLeadersAsync"/>).
    /// </summary>
    /// <exception cref="ClusterOptionsException">Bad options, or a folder holding another cluster or shape (ClusterPathMismatch).</exception>
    /// <exception cref="DataPathInUseException">The folder is open in this or another process.</exception>
    /// <exception cref="StorageCorruptException">No node could start from its files.</exception>
    public static async Task<EmbeddedCluster> StartAsync(ClusterOptions options, CancellationToken cancellationToken)
    {
        Validate(options);
        var folderLock = Storage.FolderLock.Acquire(options.Path, ClusterLockFile); // before anything in it is read or written
        EmbeddedCluster cluster;
        bool created;
        try
        {
            var stored = ClusterManifest.TryLoad(options.Path);
            created = stored is null;
            var manifest = stored ?? NewManifest(options);
            if (stored is not null)
            {
                if (!string.Equals(stored.Name, options.Name, StringComparison.OrdinalIgnoreCase))
                    throw new ClusterOptionsException(ClusterOptionsException.PathMismatch,
                        $"'{options.Path}' holds the cluster '{stored.Name}'; reopen it with -Name {stored.Name} (or give another -Path for '{options.Name}').") { Target = options.Path };
                if (options.NodeCount is int asked && asked != stored.Nodes.Count)
                    throw new ClusterOptionsException(ClusterOptionsException.PathMismatch,
                        $"The cluster stored in '{options.Path}' has {stored.Nodes.Count} nodes, not {asked}. Omit NodeCount to reopen it as it is; Add-ReplicationNode and Remove-ReplicationNode change it.");
                if (options.StoreLayout is { } layout && LayoutOf(options.Path, stored) is { } had && had != layout)
                    throw new ClusterOptionsException(ClusterOptionsException.PathMismatch,
                        $"The cluster stored in '{options.Path}' keeps its state as {had}, not {layout}. Omit StoreLayout to reopen it as it is.") { Target = options.Path };
            }
            // Its nodes and its own client share one protection: TLS with the node certificates when given (a node
            // certificate may dial as a client too), else the secret (a random one lives only in this process).
            var security = options.CertificatePath is { } certificates
                ? Security.TransportSecurity.Tls(certificates, Security.CertificateRole.Node)
                : Security.TransportSecurity.SharedSecret(options.ClusterSecret ?? ClusterSecret.CreateRandom());
            cluster = new EmbeddedCluster(options, manifest, security, folderLock);
        }
        catch
        {
            folderLock.Dispose();
            throw;
        }
        try
        {
            await cluster.StartNodesAsync(created, cancellationToken).ConfigureAwait(false);
            await cluster.InitializeAsync(options.Name, cancellationToken).ConfigureAwait(false);
            if (!created) cluster.CheckStoredShape();
            else await cluster.WaitUntilFormedAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await cluster.RemoveAsync(deleteData: false).ConfigureAwait(false);
            throw;
        }
        return cluster;
    }

    private static void Validate(ClusterOptions o)
    {
        if (string.IsNullOrWhiteSpace(o.Name)) throw new ClusterOptionsException(ClusterOptionsException.Invalid, "A cluster needs a name.");
        if (string.IsNullOrWhiteSpace(o.Path)) throw new ClusterOptionsException(ClusterOptionsException.Invalid, "A cluster needs a data folder.");
        CheckRange(o.NodeCount, 1, ClusterOptions.MaxNodeCount, "NodeCount");
        CheckRange(o.ShardCount, 1, ClusterOptions.MaxShardCount, "ShardCount");
        CheckRange(o.ReplicationFactor, 1, ClusterOptions.MaxNodeCount, "ReplicationFactor");
        o.Settings?.Validate();
        RaftTiming.Validate(o.TickInterval, o.ElectionTicks, o.HeartbeatTicks);
        CheckRange(o.SnapshotEntries, 1, int.MaxValue, "SnapshotEntries");
        CheckRange(o.SnapshotCatchUpEntries, 0, int.MaxValue, "SnapshotCatchUpEntries");
        CheckRange(o.SnapshotChunkBytes, 64, 8 << 20, "SnapshotChunkBytes");
        int nodes = o.NodeCount ?? ClusterOptions.DefaultNodeCount;
        if (o.ReplicationFactor is int rf && rf > nodes && o.NodeCount is not null)
            throw new ClusterOptionsException(ClusterOptionsException.Invalid, $"ReplicationFactor {rf} exceeds NodeCount {nodes}: each replica needs its own node.");

        static void CheckRange(int? value, int min, int max, string what)
        {
            if (value is int v && (v < min || v > max))
                throw new ClusterOptionsException(ClusterOptionsException.Invalid, $"{what} must be between {min} and {max}; got {v}.");
        }
    }

    private static ClusterManifest NewManifest(ClusterOptions o)
    {
        if (Directory.EnumerateFileSystemEntries(o.Path).Any(e => System.IO.Path.GetFileName(e) is not ClusterLockFile))
            throw new ClusterOptionsException(ClusterOptionsException.PathMismatch,
                $"'{o.Path}' holds files but no cluster.json: it is not an embedded cluster's folder. Give a new or empty -Path.") { Target = o.Path };
        int nodes = o.NodeCount ?? ClusterOptions.DefaultNodeCount;
        var manifest = new ClusterManifest
        {
            Id = Guid.NewGuid(),
            Name = o.Name,
            Nodes = Enumerable.Range(1, nodes).Select(i => new ClusterManifest.NodeSlot($"node-{i}", 0, 0)).ToList(),
        };
        manifest.Save(o.Path);
        return manifest;
    }

    /// <summary>The stored shape wins on reopen; a conflicting explicit value is an error, never a silent change.</summary>
    private void CheckStoredShape()
    {
        if (_options.ShardCount is int shards && shards != ShardCount)
            throw new ClusterOptionsException(ClusterOptionsException.PathMismatch, $"The cluster stored in '{_options.Path}' has ShardCount {ShardCount}, not {shards}. Omit ShardCount to reopen it as it is.");
        if (_options.ReplicationFactor is int rf && rf != ReplicationFactor)
            throw new ClusterOptionsException(ClusterOptionsException.PathMismatch, $"The cluster stored in '{_options.Path}' has ReplicationFactor {ReplicationFactor}, not {rf}. Omit ReplicationFactor to reopen it as it is.");
    }

    /// <summary>Starts every node: a new cluster's first node founds it and the others join through it; a reopened one's nodes resume.</summary>
    private async Task StartNodesAsync(bool created, CancellationToken ct)
    {
        StorageCorruptException? corrupt = null;
        for (int i = 0; i < _manifest.Nodes.Count; i++)
        {
            try
            {
                await StartSlotAsync(i, ct).ConfigureAwait(false);
            }
            catch (StorageCorruptException ex) when (!created)
            {
                // One damaged replica must not keep the cluster down: it stays stopped, says why
                // (Get-ReplicationNode StateReason), and serves nothing; its peers go on.
                corrupt = ex;
            }
        }
        if (_nodes.IsEmpty) throw corrupt ?? new StorageCorruptException($"No node of '{_options.Path}' could start.");
        HintSiblings();
    }

    /// <summary>Starts the node of manifest slot <paramref name="slot"/>: founding, joining, or resuming from its folder.
    /// <paramref name="joinAs"/>: the role and zone a new node (its first start) registers with.</summary>
    private async Task<ClusterNode> StartSlotAsync(int slot, CancellationToken ct, bool discardStores = false, (NodeRole Role, string? Zone) joinAs = default)
    {
        var s = _manifest.Nodes[slot];
        string? join = null;
        if (s.Id == 0 && slot > 0)
        {
            var seed = _nodes.Values.FirstOrDefault(n => n.IsRunning)
                ?? throw new ClusterNotRunningException(Name.Length > 0 ? Name : _options.Name);
            join = seed.Endpoint;
        }
        string folder = System.IO.Path.Combine(_options.Path, s.Folder);
        if (s.Id != 0 && !File.Exists(System.IO.Path.Combine(folder, NodeIdentity.FileName)))
        {
            // Its folder lost who it is (deleted, or replaced by an empty disk). Starting it as is would found a
            // second cluster; rebuilding it gives it its identity back from the registry and brings it back empty.
            if (!discardStores || _nodes.Values.FirstOrDefault(n => n.IsRunning)?.RegistryEntry(s.Id) is not { } entry)
                throw new NodePathInUseException($"The folder of node {s.Id} ('{folder}') holds no node.json: its identity is lost. Restore-ReplicationNode -Id {s.Id} rebuilds it from its peers.") { Target = s.Id };
            new NodeIdentity { NodeId = s.Id, ClusterId = _manifest.Id, JoinToken = entry.Token, Cluster = Node(_nodes.Keys.First(k => Node(k) is not null))!.Info }.Save(folder);
        }
        ClusterNode node;
        var options = NodeOptionsFor(s.Folder, s.Port, join, discardStores) with { Role = joinAs.Role, Zone = joinAs.Zone };
        try
        {
            node = await ClusterNode.StartAsync(options, ct).ConfigureAwait(false);
        }
        catch (ListenEndpointInUseException) when (s.Port != 0)
        {
            // Its old port is taken by something else now: a fresh one; its peers learn it from this process and the registry.
            node = await ClusterNode.StartAsync(options with { Listen = "127.0.0.1:0" }, ct).ConfigureAwait(false);
        }
        catch (StorageCorruptException ex) when (s.Id != 0)
        {
            _startFailures[s.Id] = ex.Message;
            throw;
        }
        _startFailures.TryRemove(node.NodeId, out _);
        _nodes[node.NodeId] = node;
        _ = node.Stopped.ContinueWith(_ => ForgetIfLeft(node), TaskScheduler.Default);
        _manifest.Nodes[slot] = s with { Id = node.NodeId, Port = node.ListenEndPoint.Port };
        _manifest.Save(_options.Path);
        AddEndpoints(new[] { node.Endpoint });
        return node;
    }

    /// <summary>The layout the cluster's nodes keep their state in, read from their folders (the first that has a state
    /// machine); null when none has one yet.</summary>
    private static Storage.StoreLayout? LayoutOf(string path, ClusterManifest manifest)
    {
        foreach (var slot in manifest.Nodes)
            if (Storage.KvStore.LayoutIn(System.IO.Path.Combine(path, slot.Folder)) is { } layout) return layout;
        return null;
    }

    private NodeOptions NodeOptionsFor(string folder, int port, string? join, bool discardStores) => new()
    {
        Path = System.IO.Path.Combine(_options.Path, folder),
        Listen = $"127.0.0.1:{port}",
        Join = join,
        Security = _security,
        Name = _options.Name,
        ClusterId = _manifest.Id,
        ShardCount = _options.ShardCount ?? ClusterOptions.DefaultShardCount,
        ReplicationFactor = _options.ReplicationFactor ?? Math.Min(ClusterOptions.DefaultReplicationFactor, _manifest.Nodes.Count),
        Settings = _options.Settings ?? ClusterSettings.Default,
        TickInterval = _options.TickInterval,
        ElectionTicks = _options.ElectionTicks,
        HeartbeatTicks = _options.HeartbeatTicks,
        Seed = _options.Seed,
        SnapshotEntries = _options.SnapshotEntries,
        SnapshotCatchUpEntries = _options.SnapshotCatchUpEntries,
        SnapshotChunkBytes = _options.SnapshotChunkBytes,
        StorageDecorator = _options.StorageDecorator,
        SnapshotStagingMemory = _options.SnapshotStagingMemory,
        // A node added later (or rebuilt) takes the layout of the cluster's nodes: a cluster stays one layout.
        StoreLayout = _options.StoreLayout ?? LayoutOf(_options.Path, _manifest) ?? Storage.StoreLayout.FilePerNode,
        DiscardStores = discardStores,
        StartSibling = StartHostedAsync,
        Log = _options.Log,
    };

    /// <summary>Tells every running node where its siblings listen now (they may have restarted on new ports).</summary>
    private void HintSiblings()
    {
        var running = _nodes.Values.Where(n => n.IsRunning).ToArray();
        foreach (var a in running)
            foreach (var b in running)
                a.HintPeer(b.NodeId, b.Endpoint);
    }

    /// <summary>
    /// Waits until every node joined, every shard has its replication factor in voters with a leader, and the metadata
    /// group has its full membership (the lowest five ids voting, the rest learning). The metadata group grows one node at
    /// a time after the data shards may already be formed: returning before it has would leave a new cluster where one
    /// node's restart (QuorumAtRisk) or the loss of two nodes (a three-voter metadata group of a five-node cluster, which
    /// cannot be recovered by force) stops every membership change, which a runbook cannot foresee.
    /// </summary>
    private async Task WaitUntilFormedAsync(CancellationToken ct)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(FormTimeout.TotalSeconds * Stopwatch.Frequency);
        int want = Math.Min(ReplicationFactor, _manifest.Nodes.Count);
        string state = "";
        while (Stopwatch.GetTimestamp() < deadline)
        {
            var status = await StatusAsync(ct).ConfigureAwait(false);
            int formed = status.Shards.Count(s => s.Voters.Count == want && s.Learners.Count == 0 && s.Leader != 0);
            string? metadata = MetadataGroupForming();
            if (formed == ShardCount && status.Nodes.Count == _manifest.Nodes.Count && metadata is null) return;
            state = $"{status.Nodes.Count} of {_manifest.Nodes.Count} nodes joined, {formed} of {ShardCount} shards at {want} voters"
                + (metadata is null ? "" : $", {metadata}");
            await Task.Delay(TimeSpan.FromMilliseconds(20), ct).ConfigureAwait(false);
        }
        throw new QuorumUnavailableException(0, FormTimeout, $"the cluster did not form in time ({state})");
    }

    /// <summary>Null when a running node of this process leads the metadata group at its full membership; else what it lacks.</summary>
    private string? MetadataGroupForming()
    {
        string? lacking = "the metadata group has no leader";
        foreach (var node in _nodes.Values.Where(n => n.IsRunning))
        {
            if (!node.GroupStatuses.Any(g => g.Shard == ClusterMetadata.MetadataGroup && g.Role == Raft.RaftRole.Leader)) continue;
            lacking = node.MetadataGroupForming();
            if (lacking is null) return null;
        }
        return lacking;
    }

    // ---- nodes: what a process hosting them can do ----

    /// <summary>How its nodes and its own client connect (the fault drill's clients connect the same way).</summary>
    internal Security.TransportSecurity ClientSecurity => _security;

    /// <summary>The ids of every node of the cluster, running or not.</summary>
    internal IReadOnlyList<int> NodeIds => _manifest.Nodes.Where(s => s.Id != 0).Select(s => s.Id).Order().ToArray();

    /// <summary>The running node <paramref name="id"/> of this process, or null (for engine tests).</summary>
    internal ClusterNode? Node(int id) => _nodes.TryGetValue(id, out var n) && n.IsRunning ? n : null;

    /// <summary>
    /// Adds a node to this process (Add-ReplicationNode): a new slot and folder (node-N), started like any joining node
    /// (through a running sibling, the join path of a node process); the ring then moves its share of replicas to it.
    /// </summary>
    public override async Task<ReplicationNode> AddNodeAsync(string? zone, bool learner, CancellationToken cancellationToken)
    {
        ThrowIfRemoved();
        await _admin.WaitAsync(cancellationToken).ConfigureAwait(false);
        ClusterNode node;
        try
        {
            if (_manifest.Nodes.Count >= ClusterOptions.MaxNodeCount)
                throw new ClusterOptionsException(ClusterOptionsException.Invalid, $"The cluster has {_manifest.Nodes.Count} nodes, the most an embedded cluster can have.");
            int next = _manifest.Nodes.Select(n => int.TryParse(n.Folder.AsSpan("node-".Length), out int k) ? k : 0).DefaultIfEmpty(0).Max() + 1;
            string folder = $"node-{next}";
            if (Directory.Exists(System.IO.Path.Combine(_options.Path, folder)))
                throw new NodePathInUseException($"'{System.IO.Path.Combine(_options.Path, folder)}' exists but no node of the cluster uses it; move it away first.");
            lock (_manifest) _manifest.Nodes.Add(new ClusterManifest.NodeSlot(folder, 0, 0));
            try
            {
                // The role and zone travel with the join: the node is registered learner-only from its first entry on.
                node = await StartSlotAsync(_manifest.Nodes.Count - 1, cancellationToken, joinAs: (learner ? NodeRole.Learner : NodeRole.Voter, zone)).ConfigureAwait(false);
            }
            catch
            {
                lock (_manifest) _manifest.Nodes.RemoveAll(n => n.Folder == folder && n.Id == 0);
                _manifest.Save(_options.Path);
                throw;
            }
            HintSiblings();
        }
        finally
        {
            _admin.Release();
        }
        return await WaitForNodeAsync(node.Endpoint, AddNodeTimeout, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>How long an added node may take to appear in the registry (it joined already: this is only status lag).</summary>
    private static readonly TimeSpan AddNodeTimeout = TimeSpan.FromSeconds(30);

    /// <summary>A node that left the cluster (Remove-ReplicationNode) stopped by itself: its slot and folder go.</summary>
    private void ForgetIfLeft(ClusterNode node)
    {
        if (!node.LeftCluster || _removed) return;
        lock (_manifest)
        {
            int slot = _manifest.Nodes.FindIndex(n => n.Id == node.NodeId);
            if (slot < 0) return;
            string folder = System.IO.Path.Combine(_options.Path, _manifest.Nodes[slot].Folder);
            _manifest.Nodes.RemoveAt(slot);
            _manifest.Save(_options.Path);
            _nodes.TryRemove(node.NodeId, out _);
            try { Directory.Delete(folder, recursive: true); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                _options.Log?.Invoke($"node {node.NodeId} left the cluster; its folder '{folder}' could not be deleted: {e.Message}");
            }
        }
    }

    public override async Task<ReplicationNode> StopNodeAsync(int id, bool kill, CancellationToken cancellationToken)
    {
        ThrowIfRemoved();
        int slot = SlotOf(id);
        await _admin.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // The last running node: read the status while a node still answers, so what GetNodes keeps afterwards is current.
            if (_nodes.TryGetValue(id, out var last) && last.IsRunning && _nodes.Values.Count(n => n.IsRunning) == 1) GetNodes();
            if (_nodes.TryGetValue(id, out var node)) await node.StopAsync(kill).ConfigureAwait(false); // idempotent
            foreach (var other in _nodes.Values.Where(n => n.IsRunning)) other.NoteStopped(id); // its siblings know at once, not at their next poll
            _ = slot;
        }
        finally
        {
            _admin.Release();
        }
        return GetNode(id); // this process knows it stopped, also when no node of it runs (GetNodes)
    }

    public override async Task StartNodeAsync(int id, CancellationToken cancellationToken)
    {
        ThrowIfRemoved();
        SlotOf(id);
        await StartHostedAsync(id, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Starts node <paramref name="id"/> of this process if it is stopped; false when it is not hosted here.</summary>
    private async Task<bool> StartHostedAsync(int id, CancellationToken ct) => await StartHostedAsync(id, discardStores: false, ct).ConfigureAwait(false);

    private async Task<bool> StartHostedAsync(int id, bool discardStores, CancellationToken ct)
    {
        int slot = _manifest.Nodes.FindIndex(s => s.Id == id);
        if (slot < 0 || _removed) return false;
        await _admin.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_nodes.TryGetValue(id, out var existing))
            {
                if (existing.IsRunning && !discardStores) return true;
                await existing.StopAsync(kill: false).ConfigureAwait(false); // a node whose storage failed: release its files first
            }
            var started = await StartSlotAsync(slot, ct, discardStores).ConfigureAwait(false);
            HintSiblings();
            // Its siblings learn it runs now, not at their next poll, so status right after a start is true.
            await Task.WhenAll(_nodes.Values.Where(n => n.IsRunning && n != started).Select(n => n.RefreshPeerAsync(started.NodeId))).ConfigureAwait(false);
            return true;
        }
        finally
        {
            _admin.Release();
        }
    }

    /// <summary>
    /// Cold backup of a node (see <see cref="ClusterClient.BackupNodeColdAsync"/>); a node of this process that is
    /// stopped has its files copied here directly (they are at rest, and this process owns the folder).
    /// </summary>
    public override async Task<ReplicationBackup> BackupNodeColdAsync(int id, string path, IProgress<BackupProgress>? progress, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfRemoved();
        int slot = SlotOf(id);
        if (_nodes.TryGetValue(id, out var node) && node.IsRunning) return await base.BackupNodeColdAsync(id, path, progress, timeout, cancellationToken).ConfigureAwait(false);
        await _admin.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var watch = Stopwatch.StartNew();
            bool createdFolder = Backups.PrepareFolder(path);
            var written = new List<string>();
            try
            {
                string source = System.IO.Path.Combine(_options.Path, _manifest.Nodes[slot].Folder);
                var files = new List<Storage.BackupManifest.FileEntry>();
                int step = 0;
                foreach (var name in new[] { "raft.db", "state.db" })
                {
                    progress?.Report(new BackupProgress("Backup-ReplicationNode", $"copying {name} of stopped node {id}", step++, 3));
                    string target = System.IO.Path.Combine(path, name);
                    written.Add(target);
                    if (name == "state.db") Storage.ShardFile.CopyStateMachine(source, target);
                    else Storage.ShardFile.CopyDatabase(System.IO.Path.Combine(source, name), target);
                    files.Add(Storage.BackupManifest.Describe(path, name));
                }
                var groups = Storage.ShardFile.GroupsOf(System.IO.Path.Combine(path, "raft.db")).Where(g => g != ClusterMetadata.MetadataGroup).ToArray();
                var contents = Storage.ShardFile.InspectStateDb(System.IO.Path.Combine(path, "state.db"), groups);
                var manifest = ColdManifest(id, DateTimeOffset.UtcNow, contents.Select(c => new ColdShard(c.Shard, c.Index, c.Term, c.KeyCount)).ToArray(), files).Save(path);
                progress?.Report(new BackupProgress("Backup-ReplicationNode", "done", 3, 3));
                return manifest.ToBackup(path, watch.Elapsed, valid: null, problem: null);
            }
            catch
            {
                Backups.RemovePartial(path, createdFolder, written);
                throw;
            }
        }
        finally
        {
            _admin.Release();
        }
    }

    /// <summary>Node status from the cluster, with this process's own knowledge of the nodes it runs: a node
    /// stopped here shows Stopped (or why it failed), leading nothing, keeping its last known indexes.</summary>
    public override IReadOnlyList<ReplicationNode> GetNodes()
    {
        ThrowIfRemoved();
        IReadOnlyList<ReplicationNode> nodes;
        try
        {
            nodes = base.GetNodes();
            _lastNodes = nodes;
        }
        catch (EndpointUnreachableException)
        {
            nodes = _lastNodes; // every node of this process is stopped: what was last known, all stopped below
        }
        return nodes.Select(n => _nodes.TryGetValue(n.Id, out var local) && local.IsRunning ? n : n with
        {
            State = NodeState.Stopped,
            ShardsLed = 0, // a stopped node leads nothing, whatever the last status said (all nodes of this process stopped)
            StateReason = (local?.FailureReason ?? (_startFailures.TryGetValue(n.Id, out var refused) ? refused : null)) is { } failure ? "failed: " + failure : "stopped",
            StateSince = n.State == NodeState.Stopped ? n.StateSince : n.StateSince ?? DateTimeOffset.UtcNow,
        }).ToArray();
    }

    /// <summary>
    /// Rebuilds a node (see <see cref="ClusterClient.RestoreNodeAsync"/>). A node of this process that is not
    /// running — stopped, or refusing to start from damaged files — is first marked and taken out of its groups,
    /// then started with its stores discarded, and rejoins empty.
    /// </summary>
    public override async Task<RebuildResult> RestoreNodeAsync(int id, string? backupPath, bool noWait, IProgress<BackupProgress>? progress, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfRemoved();
        SlotOf(id);
        if (_nodes.TryGetValue(id, out var node) && node.IsRunning) return await base.RestoreNodeAsync(id, backupPath, noWait, progress, timeout, cancellationToken).ConfigureAwait(false);
        if (backupPath is not null)
        {
            // A backup is sent to the node, which must run: start it empty first (it waits, inert, to be rebuilt).
            await StartHostedAsync(id, discardStores: true, cancellationToken).ConfigureAwait(false);
            return await base.RestoreNodeAsync(id, backupPath, noWait, progress, timeout, cancellationToken).ConfigureAwait(false);
        }
        var marked = await base.RestoreNodeAsync(id, null, noWait: true, progress, timeout, cancellationToken).ConfigureAwait(false);
        await StartHostedAsync(id, discardStores: true, cancellationToken).ConfigureAwait(false);
        if (noWait) return marked;
        return await WaitForRebuildAsync(id, marked.Epoch, false, progress, timeout, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops every node. With <paramref name="deleteData"/> the cluster folder is deleted too. Idempotent.</summary>
    public override async Task RemoveAsync(bool deleteData)
    {
        await _admin.WaitAsync().ConfigureAwait(false);
        try
        {
            _removed = true;
            await CloseAsync().ConfigureAwait(false);
            foreach (var node in _nodes.Values) await node.StopAsync(kill: false).ConfigureAwait(false);
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

    public override ValueTask DisposeAsync() => _removed ? ValueTask.CompletedTask : new(RemoveAsync(deleteData: false));

    private void ThrowIfRemoved()
    {
        if (_removed) throw new ClusterNotRunningException(Name);
    }

    private int SlotOf(int id)
    {
        int slot = _manifest.Nodes.FindIndex(s => s.Id == id);
        return slot >= 0 ? slot : throw new NodeNotFoundException(id) { Target = id };
    }

    // ---- restore into a new cluster ----

    /// <summary>
    /// Creates a NEW embedded cluster (fresh id) from the backup at <paramref name="backupPath"/>: verified first
    /// (nothing is created for a bad backup), <see cref="ClusterOptions.Path"/> must be new or empty; the cluster
    /// is created like <see cref="StartAsync"/> (shard count, node count and replication factor default to the
    /// backup's) and the backup is loaded into it (<see cref="IReplicationCluster.LoadBackupAsync"/>). On failure the
    /// new cluster is removed with its folder.
    /// </summary>
    /// <exception cref="BackupCorruptException">Verification failed; nothing was created.</exception>
    /// <exception cref="BackupPathException">No backup at the path, a cold backup lacking shards, or a target folder that is not empty.</exception>
    public static async Task<EmbeddedCluster> RestoreAsync(string backupPath, ClusterOptions options, IProgress<BackupProgress>? progress, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var m = Backups.Verify(backupPath, cancellationToken);
        if (string.IsNullOrWhiteSpace(options.Path)) throw new ClusterOptionsException(ClusterOptionsException.Invalid, "A cluster needs a data folder.");
        if (Directory.Exists(options.Path) && Directory.EnumerateFileSystemEntries(options.Path).Any())
            throw new BackupPathException(BackupPathException.RestorePathInUse, options.Path,
                $"'{options.Path}' already holds files; a restore creates a new cluster in a new or empty folder.") { Target = options.Path };
        int nodes = options.NodeCount ?? m.NodeCount;
        var o = options with
        {
            NodeCount = nodes,
            ShardCount = options.ShardCount ?? m.ShardCount,
            ReplicationFactor = options.ReplicationFactor ?? Math.Min(m.ReplicationFactor, nodes),
        };
        bool createdFolder = !Directory.Exists(o.Path);
        progress?.Report(new BackupProgress("Restore-ReplicationCluster", $"creating cluster '{o.Name}' ({nodes} nodes, {o.ShardCount} shards)", 0, 1));
        var cluster = await StartAsync(o, cancellationToken).ConfigureAwait(false);
        try
        {
            await cluster.LoadBackupAsync(backupPath, progress, timeout, cancellationToken).ConfigureAwait(false);
            return cluster;
        }
        catch
        {
            await cluster.RemoveAsync(deleteData: createdFolder).ConfigureAwait(false);
            if (!createdFolder && Directory.Exists(o.Path))
                foreach (var e in new DirectoryInfo(o.Path).EnumerateFileSystemInfos())
                {
                    if (e is DirectoryInfo d) d.Delete(recursive: true);
                    else e.Delete();
                }
            throw;
        }
    }

    public override string ToString() => $"{Name} (embedded: {_options.Path})";
}
