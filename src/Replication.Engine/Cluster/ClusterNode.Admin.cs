using System.Collections.Concurrent;
using Replication.Engine.Client;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// Administrative operations (names in <see cref="AdminOps"/>, arguments in AdminMessages.cs), served the
/// same way for an embedded cluster's node and a node in its own process: that is what lets every cmdlet
/// work from a shell that has only the endpoints and the secret. An operation either runs on any node (a
/// coordinator: backup.begin, consistency.check, node.rebuild) or on one node (TargetNode: the node that
/// holds a capture or a file); the node a request reaches forwards a targeted one, one hop, like every
/// forwarded request (ForwardContext). Bulk data travels as a binary blob beside the JSON body: rows in
/// <see cref="SnapshotChunkCodec"/> chunks, file bytes raw; every frame carries a CRC-32C, and each shard
/// or file also carries a SHA-256 that the reader checks.
/// <para>
/// Held state (captured snapshots, cold copies, uploads) is kept per node under an id and dropped when its
/// owner ends it or after <see cref="HeldIdleLimit"/> without use, so a client that vanished cannot pin a
/// read transaction or a folder for long.
/// </para>
/// </summary>
public sealed partial class ClusterNode
{
    /// <summary>Held snapshots and copies nobody touched for this long are dropped.</summary>
    internal static readonly TimeSpan HeldIdleLimit = TimeSpan.FromMinutes(5);
    /// <summary>Time a node-targeted operation may take when it has no timeout of its own (a copy, a capture).</summary>
    private static readonly TimeSpan AdminCallTimeout = TimeSpan.FromMinutes(2);

    private readonly ConcurrentDictionary<string, HeldSnapshot> _held = new();

    /// <summary>Serves an administrative operation (see the class summary); its reply is a JSON body and a blob.</summary>
    public async Task<(string Json, ReadOnlyMemory<byte> Blob)> AdminAsync(string operation, int targetNode, string json, ReadOnlyMemory<byte> blob, CancellationToken cancellationToken)
    {
        ThrowIfStopped();
        if (targetNode != 0 && targetNode != NodeId)
        {
            if (ForwardContext.IsForwarded) throw new NotLeaderException(0, NodeId, targetNode); // never a second hop
            if (!_metadata.Nodes.ContainsKey(targetNode)) throw new NodeNotFoundException(targetNode) { Target = targetNode };
            var answer = (AdminResponse)await CallPeerAsync(targetNode,
                id => new ForwardedRequest(id, new AdminRequest(id, operation, targetNode, json, blob)), AdminCallTimeout, cancellationToken).ConfigureAwait(false);
            return (answer.Json, answer.Blob);
        }
        SweepHeld();
        try
        {
            return await ServeAdminAsync(operation, json, blob, cancellationToken).ConfigureAwait(false);
        }
        catch (RetryableException e)
        {
            // An operation for a shard's leader reached a node that is not (or no longer) it: the caller retries elsewhere.
            throw new NotLeaderException(0, NodeId, e.LeaderHint == NodeId ? 0 : e.LeaderHint);
        }
    }

    private async Task<(string Json, ReadOnlyMemory<byte> Blob)> ServeAdminAsync(string operation, string json, ReadOnlyMemory<byte> blob, CancellationToken cancellationToken)
    {
        return operation switch
        {
            AdminOps.BackupBegin => Reply(await BeginBackupAsync(Args<TimeoutArgs>(json), cancellationToken).ConfigureAwait(false)),
            AdminOps.BackupRaise => Reply(await RaiseBarrierAsync(Args<CutArgs>(json)).ConfigureAwait(false)),
            AdminOps.BackupLower => Reply(await LowerBarrierAsync(Args<CutArgs>(json)).ConfigureAwait(false)),
            AdminOps.BackupWait => Reply(await WaitCaptureAsync(Args<CutArgs>(json), cancellationToken).ConfigureAwait(false)),
            AdminOps.BackupRead => ReadBackupRows(Args<ReadArgs>(json)),
            AdminOps.BackupEnd => Reply(EndHeld(Args<CutIdArgs>(json).CutId)),
            AdminOps.ColdBegin => Reply(await BeginColdCopyAsync(Args<TimeoutArgs>(json), cancellationToken).ConfigureAwait(false)),
            AdminOps.FileRead => (WireJson.Serialize(new Empty()), await ReadHeldFileAsync(Args<FileReadArgs>(json), cancellationToken).ConfigureAwait(false)),
            AdminOps.ColdEnd => Reply(EndHeld(Args<TicketArgs>(json).Ticket)),
            AdminOps.FileWrite => Reply(await WriteUploadAsync(Args<FileWriteArgs>(json), blob, cancellationToken).ConfigureAwait(false)),
            AdminOps.ConsistencyCheck => Reply(await CheckConsistencyAsync(Args<ConsistencyArgs>(json), cancellationToken).ConfigureAwait(false)),
            AdminOps.MerkleTarget => Reply(await MerkleTargetAsync(Args<ShardArgs>(json)).ConfigureAwait(false)),
            AdminOps.MerkleCapture => Reply(await CaptureForCheckAsync(Args<MerkleCaptureArgs>(json), cancellationToken).ConfigureAwait(false)),
            AdminOps.MerkleTree => Reply(await BuildTreeAsync(Args<MerkleTreeArgs>(json), cancellationToken).ConfigureAwait(false)),
            AdminOps.MerkleRows => Reply(await ListRowsAsync(Args<MerkleRowsArgs>(json), cancellationToken).ConfigureAwait(false)),
            AdminOps.MerkleEnd => Reply(EndHeld(Args<CutIdArgs>(json).CutId)),
            AdminOps.NodeMark => Reply(new RebuildAnswer((await MarkRebuildingAsync(Args<RebuildArgs>(json).Node, Args<RebuildArgs>(json).Upload, AdminCallTimeout, cancellationToken).ConfigureAwait(false)).ToString(System.Globalization.CultureInfo.InvariantCulture))),
            AdminOps.ShardSplit => Reply(await SplitShardAsync(Args<SplitArgs>(json), cancellationToken).ConfigureAwait(false)),
            AdminOps.ShardSplitHere => Reply(await SplitHereAsync(Args<SplitHereArgs>(json), cancellationToken).ConfigureAwait(false)),
            AdminOps.ShardMapAdd => Reply(await AddSplitToMapAsync(Args<MapAddArgs>(json), cancellationToken).ConfigureAwait(false)),
            AdminOps.NodeChange => Reply(await ChangeNodeAsync(Args<NodeChangeArgs>(json), cancellationToken).ConfigureAwait(false)),
            AdminOps.ShardPin => Reply(await PinShardAsync(Args<PinArgs>(json), cancellationToken).ConfigureAwait(false)),
            AdminOps.RingView => Reply(RingView()),
            AdminOps.NodeStopped => Reply(PeerStopped(Args<StoppedArgs>(json).Node)),
            AdminOps.NodeRebuilt => Reply(await RebuiltAsync(Args<RebuiltArgs>(json), cancellationToken).ConfigureAwait(false)),
            AdminOps.ShardVoters => Reply(LeaderVoters(Args<ShardArgs>(json).Shard)),
            AdminOps.NodeRebuild => Reply(await RebuildNodeAsync(Args<RebuildArgs>(json), cancellationToken).ConfigureAwait(false)),
            AdminOps.FaultSet => Reply(SetFaults(Args<FaultArgs>(json))),
            AdminOps.EventsRead => Reply(ReadEvents(Args<EventsArgs>(json))),
            AdminOps.StorageCheck => Reply(await CheckStorageHereAsync(cancellationToken).ConfigureAwait(false)),
            AdminOps.ShardFailover => Reply(await FailoverAsync(Args<FailoverArgs>(json), cancellationToken).ConfigureAwait(false)),
            AdminOps.ShardForce => Reply(await ForceFailoverAsync(Args<FailoverArgs>(json), cancellationToken).ConfigureAwait(false)),
            AdminOps.ShardReplica => Reply(new ReplicaAnswer(await _host.ReplicaStateAsync(Args<ShardArgs>(json).Shard).ConfigureAwait(false))),
            AdminOps.ShardForceHere => Reply(await ForceHereAsync(Args<ForceHereArgs>(json), cancellationToken).ConfigureAwait(false)),
            AdminOps.ShardTransferTarget => Reply(await TransferTargetAsync(Args<FailoverArgs>(json).Shard, Args<FailoverArgs>(json).Target, cancellationToken).ConfigureAwait(false)),
            AdminOps.NodeSuspend => Reply(await SuspendAsync(Args<SuspendArgs>(json), cancellationToken).ConfigureAwait(false)),
            AdminOps.NodeSuspendHere => Reply(await MarkSuspendedAsync(Args<SuspendArgs>(json).Node, Args<SuspendArgs>(json).Suspended, TimeSpan.FromMilliseconds(Args<SuspendArgs>(json).TimeoutMs), cancellationToken).ConfigureAwait(false)),
            AdminOps.ShardTransfer => Reply(await TransferHereAsync(Args<FailoverArgs>(json), cancellationToken).ConfigureAwait(false)),
            AdminOps.LeaderHandOver => Reply(await HandOverHereAsync(Args<HandOverArgs>(json)).ConfigureAwait(false)),
            AdminOps.ShardLeaders => Reply(await WatchLeadersAsync(Args<LeaderWatchArgs>(json), cancellationToken).ConfigureAwait(false)),
            _ => throw new RemoteOperationException("UnknownOperation", ReplicationErrorKind.InvalidArgument,
                $"Node {NodeId} does not know the administrative operation '{operation}' (an older version?)."),
        };
    }

    /// <summary>Calls an administrative operation on node <paramref name="node"/> (this node: directly) and decodes its answer.</summary>
    private async Task<(T Answer, ReadOnlyMemory<byte> Blob)> CallAdminAsync<T>(int node, string operation, object args, TimeSpan timeout, CancellationToken ct,
        ReadOnlyMemory<byte> blob = default)
    {
        string json = WireJson.Serialize(args);
        (string Json, ReadOnlyMemory<byte> Blob) reply;
        if (node == NodeId) reply = await AdminAsync(operation, NodeId, json, blob, ct).ConfigureAwait(false);
        else
        {
            var answer = (AdminResponse)await CallPeerAsync(node, id => new ForwardedRequest(id, new AdminRequest(id, operation, node, json, blob)), timeout, ct).ConfigureAwait(false);
            reply = (answer.Json, answer.Blob);
        }
        return (WireJson.Deserialize<T>(reply.Json, operation + " answer"), reply.Blob);
    }

    private static T Args<T>(string json) => WireJson.Deserialize<T>(json, "administrative request");

    private static (string, ReadOnlyMemory<byte>) Reply<T>(T answer) => (WireJson.Serialize(answer), ReadOnlyMemory<byte>.Empty);

    // ---- held state ----

    /// <summary>A snapshot (or a folder of copies) kept for a client or a coordinator under an id.</summary>
    private sealed class HeldSnapshot : IDisposable
    {
        public HeldSnapshot(Guid owner, Task<ShardSnapshot>? capture, string? folder)
        {
            Owner = owner;
            Capture = capture;
            Folder = folder;
        }

        public Guid Owner { get; }
        /// <summary>The pending or taken capture; null for a folder of copies.</summary>
        public Task<ShardSnapshot>? Capture { get; }
        /// <summary>A folder of copied or uploaded files, deleted on dispose; null for a capture.</summary>
        public string? Folder { get; }
        /// <summary>One reader at a time: a snapshot's connection is not thread-safe.</summary>
        public SemaphoreSlim Gate { get; } = new(1, 1);
        public DateTime LastUse { get; set; } = DateTime.UtcNow;
        public string? Sha256 { get; set; }
        public long KeyCount { get; set; } = -1;

        public void Dispose()
        {
            if (Capture is not null)
                _ = Capture.ContinueWith(t => { if (t.IsCompletedSuccessfully) t.Result.Dispose(); }, TaskScheduler.Default);
            if (Folder is not null)
            {
                try { Directory.Delete(Folder, recursive: true); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* swept again at the next start */ }
            }
        }
    }

    private static string HeldKey(Guid owner, int shard) => $"{owner:N}/{shard}";

    private HeldSnapshot Held(Guid owner, int shard, string what) =>
        _held.TryGetValue(HeldKey(owner, shard), out var h) ? Touch(h)
            : throw new RemoteOperationException("HeldStateNotFound", ReplicationErrorKind.NotFound,
                $"Node {NodeId} holds no {what} {owner} for shard {shard} (it ended, expired after {HeldIdleLimit.TotalMinutes:0} idle minutes, or the node restarted).");

    private static HeldSnapshot Touch(HeldSnapshot h)
    {
        h.LastUse = DateTime.UtcNow;
        return h;
    }

    /// <summary>Drops everything held under <paramref name="owner"/>; idempotent.</summary>
    private Empty EndHeld(Guid owner)
    {
        foreach (var key in _held.Keys.Where(k => k.StartsWith(owner.ToString("N"), StringComparison.Ordinal)))
            if (_held.TryRemove(key, out var h)) h.Dispose();
        return new Empty();
    }

    private void SweepHeld()
    {
        var cutoff = DateTime.UtcNow - HeldIdleLimit;
        foreach (var (key, h) in _held)
            if (h.LastUse < cutoff && _held.TryRemove(key, out var gone)) gone.Dispose();
    }

    private void DisposeHeld()
    {
        foreach (var key in _held.Keys)
            if (_held.TryRemove(key, out var h)) h.Dispose();
    }
}
