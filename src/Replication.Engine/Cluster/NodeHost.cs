using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Replication.Engine.Raft;
using Replication.Engine.Storage;
using Replication.Engine.Transport;

namespace Replication.Engine.Cluster;

/// <summary>
/// Runs one node: the Raft cores of every shard it hosts, its two SQLite stores, its TCP
/// transport, and the single loop thread that owns all of them (the one layer with threads and
/// timers; see DESIGN.md). Other threads talk to it only through its inbox (thread-safe entry
/// points below) and read its published <see cref="GroupStatus"/> snapshots.
///
/// Each loop iteration: tick when due; drain the inbox (peer messages, proposals, reads);
/// then for all groups at once: persist every Ready's hard state and entries in ONE SQLite
/// transaction (group commit: one fsync for many proposals and shards), only then send the
/// messages (a leader's appends excepted: they leave before the save, see ProcessReadies), then apply committed entries (one
/// state-machine transaction per pass, see ApplyReadies), complete waiting requests, and Advance the cores;
/// the pass ends with its answers released, and then a leader's commit notices sent (IsCommitNotice).
/// </summary>
internal sealed partial class NodeHost : IAsyncDisposable
{
    private readonly NodeHostOptions _options;
    private readonly Dictionary<int, GroupRuntime> _groups = new();
    private readonly ConcurrentQueue<object> _inbox = new();
    private readonly List<(ProposeRequest Request, IReadOnlyList<ProposalOutcome> Outcomes)> _acknowledgements = new(); // loop thread only
    private List<Action> _settlements = new(); // loop thread only: NodeHost.Requests.cs, Settle
    private readonly List<RaftMessage> _commitNotices = new(); // loop thread only: ProcessReadies, SendCommitNotices
    private bool _commitNoticesWaited; // loop thread only: _commitNotices are a pass old (SendCommitNotices)
    private readonly AutoResetEvent _wake = new(false);
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private TimeSpan _nextTick; // loop thread only: when the next tick is due
    private RaftLogStore? _logStore;
    private KvStore? _kv;
    private INodeStorage? _storage; // the writes of both stores, behind the fault-injection seam
    private TcpTransport? _transport;
    private Thread? _thread;
    private volatile bool _stopping;
    private volatile bool _killed;
    private volatile IReadOnlyDictionary<int, GroupStatus> _status = new Dictionary<int, GroupStatus>();
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public NodeHost(NodeHostOptions options) => _options = options;

    public int Id => _options.NodeId;
    public string DataPath => _options.DataPath;
    public IPEndPoint? EndPoint => _transport?.LocalEndPoint;
    public bool IsRunning => _thread is not null && !_stopping;
    /// <summary>Completes once the loop has exited (stopped, killed, or failed: see <see cref="FailureReason"/>).</summary>
    public Task Exited => _exited.Task;
    /// <summary>Why the loop stopped on its own (a storage error), or null.</summary>
    public string? FailureReason { get; private set; }

    /// <summary>How this node keeps its state machine (its store's: the layout its data folder has, else the one it was
    /// started with); null until the store is open. Thread-safe.</summary>
    public StoreLayout? Layout => _kv?.Layout;
    /// <summary>The node's state machine, for reads (its read methods are thread-safe).</summary>
    public KvStore Store => _kv ?? throw new RetryableException($"node {Id} is not running");

    /// <summary>The transport's counters (tests: whether what was queued for an unreachable peer has been dropped); null before the start.</summary>
    internal TransportStats? TransportStats => _transport?.Stats;
    /// <summary>Latest published status of each hosted group.</summary>
    public IReadOnlyDictionary<int, GroupStatus> Status => _status;

    /// <summary>Opens the stores, binds the transport and starts the loop; groups are then added one by one
    /// (<see cref="AddGroupAsync"/>), each restored from what the stores hold for it.</summary>
    /// <exception cref="StorageCorruptException">A store failed its checks (checksum, schema, a state
    /// machine behind its compacted log): the node refuses to start, and holds no file open.</exception>
    /// <exception cref="SocketException"><paramref name="listen"/> cannot be bound.</exception>
    public async Task StartAsync(IPEndPoint listen, CancellationToken cancellationToken)
    {
        var listener = new TcpListener(listen);
        try { listener.Start(TcpTransport.ListenBacklog); }
        catch
        {
            listener.Stop();
            throw;
        }
        await StartAsync(listener, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>As <see cref="StartAsync(IPEndPoint, CancellationToken)"/>, accepting on a listener the caller bound and
    /// started (ClusterNode binds its endpoint before it registers it); the listener belongs to this host from here on, and
    /// is stopped if the start fails.</summary>
    public async Task StartAsync(TcpListener listener, CancellationToken cancellationToken)
    {
        try
        {
            await StartCoreAsync(listener, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            if (_transport is not null) await _transport.DisposeAsync().ConfigureAwait(false);
            listener.Stop();
            _logStore?.Dispose();
            _kv?.Dispose();
            throw;
        }
    }

    private async Task StartCoreAsync(TcpListener listener, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(_options.DataPath);
        string raftPath = Path.Combine(_options.DataPath, "raft.db");
        _logStore = StorageErrors.MapCorruption(raftPath, () => new RaftLogStore(raftPath));
        var (statePath, layout) = StatePath(_options.DataPath, _options.StoreLayout);
        _kv = StorageErrors.MapCorruption(statePath, () => new KvStore(statePath, layout));
        // A torn or zeroed page anywhere in either file is found here, before anything is served from it (README,
        // "A damaged replica"); the log's entries are also checked one by one (CRC-32C) as each group loads.
        _logStore.CheckIntegrity();
        _kv.CheckIntegrity();
        INodeStorage storage = new NodeStorage(_logStore, _kv);
        _slowDisk = new SlowDiskStorage(_options.StorageDecorator?.Invoke(Id, storage) ?? storage);
        _storage = _slowDisk;
        DiscardStagedSnapshots();
        foreach (var (shard, drop) in _kv.DiscardPartialInstalls()) // NodeHost.Snapshots.cs: a crash interrupted a batched install or drop
            _options.Log?.Invoke(drop
                ? $"node {Id}: shard {shard}: the drop of a replica that moved away, which a crash interrupted, was completed"
                : $"node {Id}: shard {shard}: the rows of a snapshot install a crash interrupted were discarded; the replica will be sent the snapshot again");
        var (dropped, completed) = _kv.FinishStagedInstalls(); // NodeHost.Snapshots.cs: a crash interrupted a staged install
        foreach (int shard in dropped)
            _options.Log?.Invoke($"node {Id}: shard {shard}: the staged rows of a snapshot install a crash interrupted before its commit point were dropped; the shard keeps its old state");
        foreach (int shard in completed)
            _options.Log?.Invoke($"node {Id}: shard {shard}: the swap of a snapshot install a crash interrupted after its commit point was completed");
        _transport = new TcpTransport(Id, _options.ClusterId, _options.Security, (IPEndPoint)listener.LocalEndpoint, OnMessage, _options.Log, _options.ClientHandler);
        await _transport.StartAsync(listener, cancellationToken).ConfigureAwait(false);
        PublishStatus();
        _thread = new Thread(Loop) { IsBackground = true, Name = $"replication-node-{Id}" };
        _thread.Start();
    }

    /// <summary>
    /// Where the state machine of the data folder <paramref name="dataPath"/> is, and in which layout: the one it has (state.db,
    /// or the shards folder), or <paramref name="layout"/> for a folder that has none yet.
    /// </summary>
    /// <exception cref="StorageCorruptException">The folder holds both layouts.</exception>
    internal static (string Path, StoreLayout Layout) StatePath(string dataPath, StoreLayout layout)
    {
        layout = KvStore.LayoutIn(dataPath) ?? layout;
        return (Path.Combine(dataPath, layout == StoreLayout.FilePerNode ? "state.db" : KvStore.ShardFolderName), layout);
    }

    public void SetPeer(int nodeId, IPEndPoint endPoint) => _transport?.SetPeer(nodeId, endPoint);

    /// <summary>
    /// Stops the node. <paramref name="kill"/>: as a crash would — the loop abandons its work
    /// between two steps, nothing more is persisted or sent. Otherwise the current iteration
    /// finishes first. Waiting requests fail as retryable either way. <paramref name="beforeDisconnect"/>, if given, runs
    /// once the loop has ended (nothing more is persisted or sent by it) and before the listener and connections close,
    /// for at most <see cref="BeforeDisconnectBound"/>: a node stopped on a client's request answers that client there (the
    /// request's own connection closes with the rest); its failure does not hold up the stop.
    /// </summary>
    public async Task StopAsync(bool kill, Func<Task>? beforeDisconnect = null)
    {
        if (_thread is null) return;
        _killed |= kill;
        _stopping = true;
        _wake.Set();
        _thawed.Set();
        await _exited.Task.ConfigureAwait(false);
        AbortSnapshotTransfers();
        if (beforeDisconnect is not null)
        {
            try { await beforeDisconnect().WaitAsync(BeforeDisconnectBound).ConfigureAwait(false); }
            catch (Exception e) { _options.Log?.Invoke($"node {Id}: before closing its connections: {e.Message}"); }
        }
        if (_transport is not null) await _transport.DisposeAsync().ConfigureAwait(false);
        _logStore?.Dispose();
        _kv?.Dispose();
        FailEverything(new RetryableException($"node {Id} stopped"));
    }

    public ValueTask DisposeAsync() => new(StopAsync(kill: false));

    /// <summary>The longest a stop waits for its <c>beforeDisconnect</c> step (a client that does not read its answer holds up no stop).</summary>
    internal static readonly TimeSpan BeforeDisconnectBound = TimeSpan.FromSeconds(2);

    /// <summary>A peer's Raft message, as the transport hands it over (thread-safe; tests hand messages in here too).</summary>
    internal void OnMessage(RaftMessage m)
    {
        if (m.Type == MessageType.Liveness)
        {
            NoteLivenessArrived(m); // NodeHost.Liveness.cs: taken at the next tick, without waking the loop
            return;
        }
        // A snapshot's stream runs beside the loop (NodeHost.Snapshots.cs): acknowledgments, and every chunk after a transfer's
        // first, are taken on this thread; the loop hears of a transfer only at its start and its end.
        if (m.Type == MessageType.SnapshotAck)
        {
            OnSnapshotAck(m);
            return;
        }
        if (m.Type == MessageType.SnapshotChunk)
        {
            OnSnapshotChunkArrived(m); // NodeHost.Snapshots.cs
            return;
        }
        _inbox.Enqueue(m);
        _wake.Set();
    }

    private void Enqueue(object work)
    {
        if (_stopping) throw new RetryableException($"node {Id} is stopping");
        _inbox.Enqueue(work);
        _wake.Set();
    }

    private void Loop()
    {
        _nextTick = _clock.Elapsed + _options.TickInterval;
        try
        {
            while (!_stopping)
            {
                WaitWhileFrozen(); // NodeHost.Faults.cs: a drill's pause
                // Every group quiesced: the loop sleeps until its next liveness signal or election timer is due
                // (NodeHost.Liveness.cs, QuietWait), and the ticks that came due meanwhile are delivered together.
                var wait = _nextTick - _clock.Elapsed + QuietWait();
                // A batched snapshot install (NodeHost.Snapshots.cs) goes on when its rest after the last slice is over.
                if (UntilInstallSlice < wait) wait = UntilInstallSlice;
                // Whole milliseconds, rounded up: WaitOne(TimeSpan) truncates, so a wait under 1 ms returned at once and the
                // last millisecond before every tick was a busy loop (90% of a node's CPU when idle, bench finding).
                if (wait > TimeSpan.Zero && _inbox.IsEmpty) _wake.WaitOne((int)Math.Ceiling(wait.TotalMilliseconds));
                if (_stopping) break;
                _iterationBegan = _clock.Elapsed;
                DeliverDueTicks();
                DrainInbox();
                for (int round = 0; round < 4 && !_killed && _groups.Values.Any(g => g.Core.HasReady); round++)
                    ProcessReadies();
                DiskFullTick(); // NodeHost.DiskFull.cs
                CompleteWaiters();
                ExpireBarriers();
                MaybeCompact();
                ExpireSnapshotTransfers();
                PumpSnapshotTransfers();
                if (!_killed) ContinueInstalls();
                PublishStatus();
                ReleaseAcknowledgements();
                ReleaseSettlements();
                SendCommitNotices();
                NoteIterationForInstalls();
            }
        }
        catch (Exception ex) when (!_killed)
        {
            // A storage failure (disk full, corruption) must not leave a half-working node that
            // acknowledges writes: stop the node and fail everything waiting on it.
            _options.Log?.Invoke($"node {Id} stopped after an error: {ex}");
            FailureReason = ex.Message;
            _stopping = true;
            FailEverything(new RetryableException($"node {Id} failed: {ex.Message}"));
        }
        finally
        {
            ReleaseSettlements();
            _exited.TrySetResult();
        }
    }

    /// <summary>
    /// Brings every core's clock up to real (monotonic) time: each tick due since the last call
    /// reaches the cores, at most ElectionTicks/2 of them through Tick (timers), the rest — after
    /// the process was paused or an iteration ran long — through Elapse (lease clock only). So a
    /// lease never outlives real time (RaftNode.Read.cs, "Clock contract"; bug fixed: missed ticks
    /// beyond ten were dropped, and a leader frozen for 200 ms served a lease read from a lease that
    /// had expired), while a whole process frozen for a while does not come back with its followers
    /// timing out together (one that heard its leader within ElectionTicks/2 ticks cannot).
    /// Called at the top of each iteration, and again right before a lease read is checked.
    /// </summary>
    private void DeliverDueTicks()
    {
        var now = _clock.Elapsed;
        if (now < _nextTick) return;
        long tick = _options.TickInterval.Ticks;
        long due = 1 + (now - _nextTick).Ticks / tick;
        long timed = Math.Min(due, Math.Max(1, _options.ElectionTicks / 2));
        var heard = TakeArrivedLiveness(); // NodeHost.Liveness.cs: signals that arrived since the last delivery, oldest first
        int taken = 0;
        for (long i = 0; i < timed; i++)
        {
            // A liveness signal reaches the cores between the ticks it arrived between, as if it had woken the loop.
            var at = _nextTick + TimeSpan.FromTicks(i * tick);
            while (taken < heard.Count && heard[taken].At < at) OnLiveness(heard[taken++].Node);
            foreach (var g in _groups.Values)
                if (!IsInstalling(g.Core.Group) && MayTick(g)) g.Core.Tick(); // paused until its snapshot is stored (NodeHost.Snapshots.cs); NodeHost.DiskFull.cs: timers stop
        }
        while (taken < heard.Count) OnLiveness(heard[taken++].Node);
        foreach (var g in _groups.Values)
        {
            if (IsInstalling(g.Core.Group)) continue;
            g.Core.Elapse(MayTick(g) ? due - timed : due); // the lease clock runs on
        }
        _nextTick += TimeSpan.FromTicks(due * tick);
        MaybeSendLiveness(due); // NodeHost.Liveness.cs
    }

    private void DrainInbox()
    {
        for (int i = 0; i < 100_000 && _inbox.TryDequeue(out var work); i++)
        {
            switch (work)
            {
                case RaftMessage { Type: MessageType.SnapshotChunk } chunk:
                    OnSnapshotChunkOrDiskFull(chunk); // NodeHost.DiskFull.cs
                    break;
                case ReceivedSnapshot received:
                    OnSnapshotReceived(received);
                    break;
                case RaftMessage m:
                    // Only the replica a message is addressed to takes it: one for a replica this node dropped (its
                    // tombstone) or has not hosted yet is dropped, and never brings a replica into being (ReplicaIds). So is
                    // one for a replica that is storing a snapshot: its core is paused until then (NodeHost.Snapshots.cs).
                    if (_groups.TryGetValue(m.Group, out var g) && m.To == g.Core.Id && !IsInstalling(m.Group))
                    {
                        g.Core.Step(m);
                        if (m.Type is MessageType.Append or MessageType.Heartbeat && m.From == g.Core.Leader)
                            g.LastContact = DateTimeOffset.UtcNow;
                        else if (g.Core.Role == RaftRole.Leader && m.Type is MessageType.AppendResponse or MessageType.HeartbeatResponse)
                            g.LastContact = DateTimeOffset.UtcNow;
                    }
                    break;
                case ProposeRequest p: StartProposal(p); break;
                case ReadRequest r:
                    if (r.Lease) DeliverDueTicks(); // the lease is checked against the clock of this moment
                    StartRead(r);
                    break;
                case TransferRequest t: StartTransfer(t); break;
                case CaptureRequest c: StartCapture(c); break;
                case LoopWork w: w.Run(); break;
            }
        }
    }

    /// <summary>
    /// A leader's append without entries: it tells a follower the new commit index (etcd's bcastAppend after a commit), or
    /// probes where its log ends. It leaves after the pass's writes are applied and answered, not before: sent first, its
    /// system calls (one per follower, each waking the peer's reader) stood between every write's commit and its answer.
    /// Bench, one client, per write on the leader: from the commit to the applied answer 0.50-0.63 ms before, 0.17-0.19 ms
    /// after. When more work waits in the inbox, the notices ride with the next pass's first messages instead (one frame
    /// per peer, as before this change; a separate send each pass cost about 3% more CPU per write at 64 clients), but wait
    /// at most that one pass (<see cref="SendCommitNotices"/>). Any delay of a message is safe in Raft; a follower learns
    /// the commit a pass later, and a new append carries it anyway.
    /// </summary>
    private static bool IsCommitNotice(GroupRuntime g, RaftMessage m) =>
        m.Type == MessageType.Append && m.Entries.Count == 0 && g.Core.Role == RaftRole.Leader;

    /// <summary>End of a pass: sends the commit notices now, or leaves them for the next pass's first send (IsCommitNotice).</summary>
    private void SendCommitNotices()
    {
        if (_commitNotices.Count == 0) return;
        if (!_inbox.IsEmpty && !_commitNoticesWaited)
        {
            _commitNoticesWaited = true;
            return;
        }
        if (!_killed) _transport!.SendAll(_commitNotices);
        _commitNotices.Clear();
        _commitNoticesWaited = false;
    }

    /// <summary>Puts the notices that waited from the last pass in front of this send's messages (same peer: older first).</summary>
    private void TakeWaitingCommitNotices(List<RaftMessage> outgoing)
    {
        if (!_commitNoticesWaited) return;
        outgoing.InsertRange(0, _commitNotices);
        _commitNotices.Clear();
        _commitNoticesWaited = false;
    }

    private void ProcessReadies()
    {
        var readies = new List<(GroupRuntime Group, Ready Ready)>();
        foreach (var g in _groups.Values)
            if (g.Core.HasReady) readies.Add((g, g.Core.GetReady()));

        // A snapshot from the leader replaces the state machine and the log before anything of
        // the same Ready is persisted (Ready's ordering contract).
        foreach (var (g, ready) in readies)
            if (ready.Snapshot is { } snapshot) InstallSnapshot(g, snapshot);

        var writes = new List<GroupWrite>();
        var written = new List<(GroupRuntime Group, HardState State)>();
        foreach (var (g, ready) in readies)
        {
            // A hard state whose only change is a higher commit index need not be made durable on
            // its own: safety rests on term and vote, and a restarted node recovers its commit index
            // from the leader (and from the state machine's applied index). Skipping it saves one
            // fsync per commit round; it rides along with the next write that has to happen anyway.
            // Term and vote are compared with what is on disk (not with the previous Ready), so a
            // change whose save failed (a full disk) is written with the next save.
            var state = ready.HardState ?? g.Core.HardState;
            bool termOrVote = state.Term != g.Persisted.Term || state.Vote != g.Persisted.Vote;
            if (!termOrVote && ready.Entries.Count == 0) continue;
            writes.Add(new GroupWrite(g.Core.Group, state, ready.Entries));
            written.Add((g, state));
        }
        // A leader's appends leave before its own copy is durable (Raft thesis 10.2.1, as etcd does): the followers'
        // writes overlap the leader's instead of following it, which takes one fsync off every write's latency. Safe
        // because an append promises nothing about the sender's disk: the core counts the leader toward a quorum only
        // for entries the host reported durable (RaftNode.Advance), and applies an entry only once it is durable here
        // (RaftLog.NextCommitted), so an acknowledged write is still durable on a majority that includes its leader.
        // Only from a group whose term and vote are already durable (a new term must be on disk before this node
        // speaks in it); everything else leaves after the save, as the Ready contract says.
        // Each group of messages below leaves together (TcpTransport.SendAll: per peer one frame, written on this thread).
        HashSet<RaftMessage>? sentEarly = null;
        var outgoing = new List<RaftMessage>();
        foreach (var (g, ready) in readies)
        {
            if (ready.Entries.Count == 0 || g.Core.Role != RaftRole.Leader) continue;
            var state = ready.HardState ?? g.Core.HardState;
            if (state.Term != g.Persisted.Term || state.Vote != g.Persisted.Vote) continue;
            foreach (var m in ready.Messages)
            {
                if (m.Type != MessageType.Append) continue;
                outgoing.Add(m);
                (sentEarly ??= new HashSet<RaftMessage>(ReferenceEqualityComparer.Instance)).Add(m);
            }
        }
        if (outgoing.Count > 0)
        {
            TakeWaitingCommitNotices(outgoing);
            _transport!.SendAll(outgoing);
        }
        outgoing.Clear();
        // Durable (synchronous=FULL) before anything else leaves. False: the disk is full and nothing was
        // stored; what then may still leave, and why, is in NodeHost.DiskFull.cs.
        var outcome = writes.Count == 0 ? SaveOutcome.Saved : TrySave(writes);
        bool saved = outcome == SaveOutcome.Saved;
        if (_killed) return;
        if (saved) foreach (var (g, state) in written) g.Persisted = state;
        // Per Ready: its group had something to save that the failed save did not store.
        var unsaved = new bool[readies.Count];
        for (int i = 0; i < readies.Count; i++) unsaved[i] = !saved && written.Exists(w => w.Group == readies[i].Group);

        var newNotices = new List<RaftMessage>();
        for (int i = 0; i < readies.Count; i++)
        {
            var (g, ready) = readies[i];
            bool termVoteDurable = g.Core.Term == g.Persisted.Term && g.Core.Vote == g.Persisted.Vote;
            foreach (var m in ready.Messages)
            {
                if (sentEarly?.Contains(m) == true) continue;
                if (unsaved[i] && !(termVoteDurable && MaySendUnpersisted(m))) continue;
                if (m.Type == MessageType.Snapshot) StartSnapshotTransfer(g, m); // the data goes out of band, in chunks
                else if (IsCommitNotice(g, m)) newNotices.Add(m);
                else outgoing.Add(m);
            }
        }
        if (outgoing.Count > 0)
        {
            TakeWaitingCommitNotices(outgoing);
            _transport!.SendAll(outgoing);
        }
        _commitNotices.AddRange(newNotices); // after any that waited: same peer, older first

        var results = ApplyReadies(readies, unsaved);
        for (int i = 0; i < readies.Count; i++)
        {
            var (g, ready) = readies[i];
            bool applied = false;
            if (results[i] is { } applyResults)
            {
                OnEntriesApplied(g, ready.CommittedEntries, applyResults);
                applied = true;
            }
            foreach (var rs in ready.ReadStates) OnReadConfirmed(g, rs);
            if (ready.SoftState is { } ss) OnRoleChanged(g, ss);
            if (unsaved[i] && outcome == SaveOutcome.Failed && g.Core.Role != RaftRole.Leader
                && (g.Core.Term != g.Persisted.Term || g.Core.Vote != g.Persisted.Vote))
            {
                RestartFromFiles(g); // NodeHost.DiskFull.cs
                continue;
            }
            // What could not be written (a full disk) is not reported done: the core offers it again.
            g.Core.Advance(!unsaved[i] && (applied || ready.CommittedEntries.Count == 0) ? ready : new Ready
            {
                Entries = unsaved[i] ? Array.Empty<LogEntry>() : ready.Entries,
                CommittedEntries = applied ? ready.CommittedEntries : Array.Empty<LogEntry>(),
            });
        }
    }

    /// <summary>
    /// Applies the committed entries of a pass's Readies, each group's results in the slot of its Ready (null: not applied,
    /// a full state.db; the core offers them again), after reporting each group's durable entries (OnEntriesPersisted).
    /// When more than one group has entries, all of them go into ONE state.db transaction (KvStore.BeginApplyBatch): a
    /// transaction per group wrote the applied-index page and a commit per group and pass on every replica. Nothing is
    /// reported applied before that commit, so a full disk at any point of the batch leaves every group of it unapplied,
    /// as a group's own transaction did (NodeHost.DiskFull.cs); any other failure stops the node, as before. Not while a
    /// consistency capture waits (NodeHost.Consistency.cs: it reads the shard's committed state mid-pass), nor with a split.
    /// </summary>
    private IReadOnlyList<EntryApplyResult>?[] ApplyReadies(List<(GroupRuntime Group, Ready Ready)> readies, bool[] unsaved)
    {
        var results = new IReadOnlyList<EntryApplyResult>?[readies.Count];
        bool batch = _captures.Count == 0 && readies.Count(r => r.Ready.CommittedEntries.Count > 0) > 1
            && !(_stateFullUntil is { } full && _clock.Elapsed < full)
            && !readies.Exists(r => HasSplit(r.Ready.CommittedEntries)); // a split creates its group, which may write state.db
        if (batch) _kv!.BeginApplyBatch();
        try
        {
            for (int i = 0; i < readies.Count; i++)
            {
                var (g, ready) = readies[i];
                if (!unsaved[i] && ready.Entries.Count > 0) OnEntriesPersisted(g, ready.Entries);
                if (ready.CommittedEntries.Count == 0) continue;
                results[i] = TryApply(g, ready.CommittedEntries); // NodeHost.Consistency.cs: may pause for a snapshot
                if (results[i] is null && batch)
                {
                    // A full disk: the batch is lost whole, with the groups applied before this one in it.
                    _kv!.RollbackApplyBatch();
                    Array.Clear(results);
                    batch = false;
                }
            }
            if (batch)
            {
                try
                {
                    _kv!.CommitApplyBatch();
                }
                catch (Exception e) when (StorageErrors.IsDiskFull(e))
                {
                    // Rolled back: nothing of the batch is stored, except, with a file per shard, the files that committed
                    // before the one that failed (KvStore.CommittedOfFailedBatch): their groups keep their results.
                    var committed = _kv!.CommittedOfFailedBatch;
                    for (int i = 0; i < readies.Count; i++)
                        if (!committed.Contains(readies[i].Group.Core.Group)) results[i] = null;
                    _stateFullUntil = NoteDiskFull("state.db", e);
                }
            }
        }
        catch
        {
            if (batch) _kv!.RollbackApplyBatch();
            throw;
        }
        return results;
    }

    private static bool HasSplit(IReadOnlyList<LogEntry> entries)
    {
        foreach (var e in entries)
            if (e.Type == EntryType.Normal && ShardCommand.IsShardCommand(e.Data)) return true;
        return false;
    }

    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// Completes at the next change of what the control loop acts on (a group's role, leader, membership or committed membership, the
    /// metadata group's commit index, or a group added or removed), or after <paramref name="timeout"/>, or when
    /// <paramref name="cancellationToken"/> is cancelled; never faults. True when it completed because of a change. Thread-safe.
    /// </summary>
    public Task<bool> WaitForChangeAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
        Volatile.Read(ref _changed).Task.WaitAsync(timeout, cancellationToken).ContinueWith(t => t.IsCompletedSuccessfully, TaskScheduler.Default);

    /// <summary>
    /// <see cref="WaitForChangeAsync"/> blocking the calling thread, for a thread of its own (the control loop's): the wait
    /// needs no timer and no thread-pool work item (the change is signalled to the waiting thread directly). True when it
    /// ended because of a change; false after <paramref name="timeout"/> or once <paramref name="cancellationToken"/> is cancelled.
    /// </summary>
    public bool WaitForChange(TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            return Volatile.Read(ref _changed).Task.Wait((int)Math.Ceiling(timeout.TotalMilliseconds), cancellationToken);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private void PublishStatus()
    {
        var before = _status;
        var status = new Dictionary<int, GroupStatus>(_groups.Count);
        foreach (var (shard, g) in _groups)
        {
            var c = g.Core;
            if (g.LastRole != c.Role)
            {
                g.LastRole = c.Role;
                g.StateSince = DateTimeOffset.UtcNow;
            }
            // A group whose status inputs have not moved since the last pass keeps its published status (most passes of a
            // quiet node, where rebuilding every group's status was a quarter of the loop's CPU with 64 shards, bench finding):
            // the log's last index and term fix the configuration (voters and learners), and with the commit index the
            // committed one; a leader's match indexes are compared one by one. The last contact (now, on a leader; a quiesced
            // follower's moves with each liveness signal of its leader's node) is set on a copy when it alone moved.
            var inputs = new StatusInputs(c, c.Role, c.Leader, c.Term, c.LastIndex, c.LastTerm, c.Committed, c.Applied, c.LastSnapshot.Index,
                c.Voters.Count, c.Learners.Count, c.LastStateChangeReason, g.StateSince);
            var memberMatch = c.Role == RaftRole.Leader ? c.MatchIndexes() : null;
            var contact = c.Role == RaftRole.Leader ? DateTimeOffset.UtcNow : g.LastContact;
            if (g.Published is { } published && g.PublishedInputs == inputs && SameMatches(g.PublishedMatch, memberMatch))
            {
                status[shard] = published.LastContact == contact ? published : published with { LastContact = contact };
                continue;
            }
            // Nodes, not member ids, from here on (ReplicaIds): only the membership plan needs the members themselves.
            var (committedVoters, committedLearners) = c.MembershipAtCommitted(c.Committed);
            var match = new Dictionary<int, long>();
            var acknowledged = new List<int>();
            foreach (var (member, index) in memberMatch ?? EmptyMatches)
            {
                match[ReplicaIds.NodeOf(member)] = Math.Max(index, match.GetValueOrDefault(ReplicaIds.NodeOf(member)));
                if (index > 0) acknowledged.Add(member);
            }
            status[shard] = g.Published = new GroupStatus(shard, c.Role, ReplicaIds.NodeOf(c.Leader), c.Term, c.LastIndex, c.Committed, c.Applied, c.LastSnapshot.Index,
                c.Voters.Select(ReplicaIds.NodeOf).Distinct().Order().ToArray(), c.Learners.Select(ReplicaIds.NodeOf).Distinct().Order().ToArray(), match,
                contact, c.LastStateChangeReason, g.StateSince)
            {
                Member = c.Id,
                MemberVoters = c.Voters.Order().ToArray(),
                MemberLearners = c.Learners.Order().ToArray(),
                CommittedMembers = committedVoters.Concat(committedLearners).Order().ToArray(),
                AcknowledgedMembers = acknowledged,
            };
            g.PublishedInputs = inputs;
            g.PublishedMatch = memberMatch;
        }
        _status = status;
        NoteChanges(before, status); // NodeHost.Events.cs
        if (Changed(before, status)) Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    /// <summary>What a group's published status is built from (<see cref="PublishStatus"/>), besides a leader's match indexes.</summary>
    private readonly record struct StatusInputs(RaftNode Core, RaftRole Role, int Leader, long Term, long LastIndex, long LastTerm, long Committed,
        long Applied, long SnapshotIndex, int VoterCount, int LearnerCount, string Reason, DateTimeOffset StateSince);

    private static readonly IReadOnlyDictionary<int, long> EmptyMatches = new Dictionary<int, long>();

    private static bool SameMatches(IReadOnlyDictionary<int, long>? a, IReadOnlyDictionary<int, long>? b)
    {
        if (a is null || b is null) return a is null && b is null;
        if (a.Count != b.Count) return false;
        foreach (var (member, index) in a)
            if (!b.TryGetValue(member, out long other) || other != index) return false;
        return true;
    }

    private static bool Changed(IReadOnlyDictionary<int, GroupStatus> before, Dictionary<int, GroupStatus> after)
    {
        if (before.Count != after.Count) return true;
        foreach (var (group, a) in after)
        {
            if (!before.TryGetValue(group, out var b)) return true;
            if (a.Role != b.Role || a.Leader != b.Leader || !a.MemberVoters.SequenceEqual(b.MemberVoters) || !a.MemberLearners.SequenceEqual(b.MemberLearners)
                || !a.CommittedMembers.SequenceEqual(b.CommittedMembers)
                || (group == ClusterMetadata.MetadataGroup && a.Committed != b.Committed))
                return true;
        }
        return false;
    }
}
