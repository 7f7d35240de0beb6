using Replication.Engine.Raft;
using Replication.Engine.Storage;
using Replication.Engine.Verification;

namespace Replication.Simulation.Simulation;

/// <summary>
/// One simulated node: the real <see cref="RaftNode"/>, a <see cref="SimDisk"/>, a volatile
/// <see cref="KvMachine"/>, and a host that follows the product's NodeHost rules: carry out each
/// Ready in contract order (persist, send, apply, serve reads, Advance); track proposals by
/// index and term (an entry applied at that index with another term means the proposal was
/// lost); ReadIndex reads by context, released once applied; lease reads when the lease is
/// valid, else a ReadIndex round; unconfirmed reads fail when leadership is lost.
/// A slow disk holds a Ready "being persisted" for some ticks; the core keeps stepping and
/// ticking meanwhile, as it would under an asynchronous host. Not thread-safe.
/// </summary>
internal sealed class SimNode
{
    private readonly Simulator _sim;
    private readonly Dictionary<long, (ClientRequest Request, long Term)> _pendingByIndex = new();
    private readonly Dictionary<long, ClientRequest> _pendingReads = new();
    private readonly List<(long Index, ClientRequest Request)> _awaitingApply = new();
    private long _nextReadContext;
    private KvMachine? _installing;
    private int _incarnation;

    /// <param name="bootstrapVoters">The founders of the group; empty for a node added by a membership
    /// change (created with an empty configuration and an empty disk: it learns the membership from the leader).</param>
    /// <param name="tickPeriod">This machine's tick period, in thousandths of a time unit (its clock rate: drift).</param>
    /// <param name="epoch">The first epoch: past the last one of an earlier replica on the same machine, so its events stay void.</param>
    /// <param name="group">The shard whose Raft group this replica belongs to (0 unless created by a split: Simulator.Splits.cs).</param>
    /// <param name="anchor">The shard-0 replica whose machine hosts this one (itself for a shard-0 replica): the machine's
    /// crashes, pauses, partitions and state-machine commits are shared by the replicas it hosts.</param>
    public SimNode(Simulator sim, int id, IReadOnlyList<int> bootstrapVoters, int tickPeriod, int epoch = 0, int group = 0, int anchor = 0)
    {
        Epoch = epoch;
        _sim = sim;
        Id = id;
        Group = group;
        Anchor = anchor == 0 ? id : anchor;
        Disk = new SimDisk(bootstrapVoters) { Checkpoint = new KvMachine(group) };
        Machine = new KvMachine(group);
        TickPeriod = tickPeriod;
    }

    /// <summary>The shard of this replica's group.</summary>
    public int Group { get; }
    /// <summary>The shard-0 replica that stands for this replica's machine (see the constructor).</summary>
    public int Anchor { get; }

    /// <summary>Time between two of this node's ticks, in thousandths of a time unit (its clock rate, which survives restarts).</summary>
    public int TickPeriod { get; }
    /// <summary>Ticks that came due while the node was paused (its host catches up on resume).</summary>
    public int MissedTicks { get; set; }
    private long _tickPhase;

    public int Id { get; }
    public bool Up { get; private set; }
    /// <summary>Whether its machine hosts it (started once): a split group's replica is hosted once its machine applies the
    /// split, or joins; until then it is down and not restarted by healing.</summary>
    public bool Hosted { get; set; } = true;
    /// <summary>Shut down for good by its host after its removal from the group; never restarted.</summary>
    public bool Retired { get; private set; }
    /// <summary>Incremented by every crash: events scheduled for an earlier incarnation are void.</summary>
    public int Epoch { get; private set; }
    public SimDisk Disk { get; }
    public RaftNode? Core { get; private set; }
    public KvMachine Machine { get; private set; }
    /// <summary>A Ready whose write is still in progress on a slow disk.</summary>
    public Ready? Persisting { get; private set; }
    /// <summary>Snapshot data received in full from a leader, waiting for the core to install it (NodeHost's staging file).</summary>
    public (long Index, KvMachine Data)? Staged { get; set; }
    /// <summary>Ticks each write takes; 0 = immediate.</summary>
    public int SlowDiskTicks { get; set; }

    public void Start()
    {
        Machine = Disk.Checkpoint.Clone();
        var config = new RaftConfig
        {
            Id = Id,
            Group = Group,
            Voters = Disk.BootstrapVoters.ToArray(),
            ElectionTicks = _sim.Options.ElectionTicks,
            HeartbeatTicks = _sim.Options.HeartbeatTicks,
            MaxSizePerMessage = _sim.Options.MaxSizePerMessage,
            MaxInflightMessages = _sim.Options.MaxInflightMessages,
            Applied = Machine.Applied,
            Random = new Random(_sim.DeriveSeed(Id, ++_incarnation)),
            Mutation = _sim.Options.Mutant.CoreMutation(),
        };
        Core = new RaftNode(config, Disk.HardState, Disk.Entries, Disk.Snapshot);
        Staged = null; // a transfer in progress is lost with the process (NodeHost deletes its staging file)
        _installing = null;
        Up = true;
    }

    /// <summary>
    /// Crash: everything volatile is gone. A write in progress either committed as a whole or left
    /// nothing (<paramref name="writeCommitted"/>): the product writes a Ready's hard state and
    /// entries in one SQLite transaction (RaftLogStore.Save), so no crash keeps one without the
    /// other or a part of the entries. Returns whether a write was in progress.
    /// </summary>
    public bool Crash(bool writeCommitted)
    {
        bool mid = false;
        if (Persisting is { } rd)
        {
            mid = true;
            // A Ready that installs a snapshot writes nothing until the snapshot is in: the crash left none of it.
            if (rd.Snapshot is null && writeCommitted) SaveDurably(rd);
        }
        Persisting = null;
        _sentEarly.Clear();
        Up = false;
        Epoch++;
        Core = null;
        _pendingByIndex.Clear();
        _pendingReads.Clear();
        _awaitingApply.Clear();
        _sim.ForgetUnwrittenProposals(this);
        return mid;
    }

    /// <summary>The host shuts the node down for good (it was removed from the group): as a crash, never followed by a restart.</summary>
    public void Retire()
    {
        Crash(writeCommitted: false);
        Retired = true;
    }

    /// <summary>
    /// As NodeHost.ProcessReadies: a hard state whose only change is the commit index is not written
    /// on its own (safety rests on term and vote; a restarted node learns the commit index again
    /// from the leader), so after a crash a node may know less of the commit than it once did.
    /// </summary>
    private bool NeedsWrite(Ready rd) =>
        rd.Entries.Count > 0 || (rd.HardState is { } h && (h.Term != Disk.HardState.Term || h.Vote != Disk.HardState.Vote));

    private void SaveDurably(Ready rd)
    {
        if (!NeedsWrite(rd)) return;
        Disk.Save(rd.HardState, rd.Entries, DropVote);
        if (rd.Entries.Count > 0) _sim.ObserveDurableLog(Group);
    }

    private bool DropVote => _sim.Options.Mutant == Mutant.VoteNotPersisted;
    private bool OwnershipAtProposal => _sim.Options.Mutant == Mutant.OwnershipCheckedAtProposal;
    private bool AckBeforePersist => _sim.Options.Mutant == Mutant.AckBeforePersist;

    public void Tick()
    {
        Core!.Tick();
        Pump();
    }

    /// <summary>Time units until this node's next tick: its period, with the fractions carried over.</summary>
    public long NextTickDelay()
    {
        long before = _tickPhase / 1000;
        _tickPhase += TickPeriod;
        return _tickPhase / 1000 - before;
    }

    /// <summary>The host catches up after a pause: <paramref name="timed"/> ticks through the timers, <paramref name="elapsed"/> through the lease clock only.</summary>
    public void CatchUp(int timed, int elapsed)
    {
        for (int i = 0; i < timed; i++) Core!.Tick();
        Core!.Elapse(elapsed);
        Pump();
    }

    public void Step(RaftMessage m)
    {
        Core!.Step(m);
        Pump();
    }

    /// <summary>A client request arrives (as NodeHost.StartProposal / StartRead).</summary>
    public void Handle(ClientRequest req)
    {
        var core = Core!;
        if (req.Input.Kind == KvOpKind.Get)
        {
            if (_sim.Options.Mutant == Mutant.ReadWithoutReadIndex)
            {
                if (core.Role == RaftRole.Leader) ServeRead(req);
                else _sim.Reply(this, req, ReplyKind.NotLeader, null, core.Leader);
                return;
            }
            if (req.Lease)
            {
                long index = core.LeaseReadIndex();
                if (index >= 0)
                {
                    _awaitingApply.Add((index, req));
                    Pump();
                    return;
                }
                // No valid lease: fall back to a ReadIndex round, as NodeHost does.
            }
            long ctx = ++_nextReadContext;
            if (!core.ReadIndex(ctx))
            {
                _sim.Reply(this, req, ReplyKind.NotLeader, null, core.Leader);
                return;
            }
            _pendingReads[ctx] = req;
        }
        else
        {
            // The mutant's leader checks ownership when it proposes, against what it has applied, and the apply does not.
            if (OwnershipAtProposal && !Machine.Owns(req.Input.Key))
            {
                _sim.Reply(this, req, ReplyKind.WrongShard, null, core.Leader);
                return;
            }
            long first = core.Propose(new[] { Encode(req.Input) });
            if (first == 0)
            {
                _sim.Reply(this, req, ReplyKind.NotLeader, null, core.Leader);
                return;
            }
            _pendingByIndex[first] = (req, core.Term);
            _sim.ObserveProposal(this, first, core.Term, req.OpId, req.Input);
        }
        Pump();
    }

    private static byte[] Encode(KvInput input) => KvCommand.Encode(new[]
    {
        input.Kind switch
        {
            KvOpKind.Put => new KvOp(KvOpType.Put, input.Key, input.Value, null),
            KvOpKind.Delete => new KvOp(KvOpType.Delete, input.Key, null, null),
            _ => new KvOp(KvOpType.Put, input.Key, input.Value, input.ExpectedVersion),
        },
    });

    /// <summary>Carries out Readies until the core has none (bounded), or a slow write is in progress.</summary>
    public void Pump()
    {
        for (int round = 0; round < 64 && Up && Persisting is null && Core!.HasReady; round++)
        {
            var rd = Core.GetReady();
            // Bind the staged data to this Ready now: on a slow disk another transfer may arrive before it is written.
            if (rd.Snapshot is { Index: > 0 } snap && Staged is { } st && st.Index == snap.Index)
            {
                _installing = st.Data;
                Staged = null;
            }
            if (AckBeforePersist) Send(rd);
            else SendAppendsEarly(rd);
            if (NeedsWrite(rd) && SlowDiskTicks > 0)
            {
                Persisting = rd;
                _sim.SchedulePersistDone(this, SlowDiskTicks);
                return;
            }
            Finish(rd, persist: true);
        }
        CompleteWaiters();
        if (Up && Persisting is null && Core!.HasReady) _sim.SchedulePump(this);
    }

    /// <summary>The slow write of <see cref="Persisting"/> has completed.</summary>
    public void PersistDone()
    {
        var rd = Persisting!;
        Persisting = null;
        Finish(rd, persist: true);
        Pump();
    }

    private void Finish(Ready rd, bool persist)
    {
        if (rd.Snapshot is { } snap) InstallSnapshot(snap);
        if (persist) SaveDurably(rd);
        if (Core!.Role == RaftRole.Leader && (rd.Entries.Count > 0 || rd.HardState is not null)
            && _sim.MaybeCrashAt(this, CrashPoint.LeaderBeforeSend))
            return; // durable here, never sent: new entries (or a commit) exist on this node only
        if (!AckBeforePersist) Send(rd);
        foreach (var e in rd.CommittedEntries) Apply(e);
        foreach (var rs in rd.ReadStates)
            if (_pendingReads.Remove(rs.Context, out var r)) _awaitingApply.Add((rs.Index, r));
        if (rd.SoftState is { } ss && ss.Role != RaftRole.Leader)
        {
            foreach (var r in _pendingReads.Values) _sim.Reply(this, r, ReplyKind.ReadAborted, null, ss.Leader);
            _pendingReads.Clear();
        }
        Core!.Advance(rd);
        _sim.ObserveRole(this);
        MaybeCompact();
        if (rd.Messages.Any(m => m.Type == MessageType.VoteResponse && !m.Reject)) _sim.MaybeCrashAt(this, CrashPoint.AfterVote);
    }

    /// <summary>Appends this Ready sent before it was persisted (<see cref="SendAppendsEarly"/>), not sent again after.</summary>
    private readonly HashSet<RaftMessage> _sentEarly = new(ReferenceEqualityComparer.Instance);

    /// <summary>
    /// As NodeHost.ProcessReadies: a leader's appends leave before its own write (which a slow disk holds for some
    /// ticks, and a crash may lose), when the group's term and vote are already durable; the rest waits for the write.
    /// </summary>
    private void SendAppendsEarly(Ready rd)
    {
        if (rd.Entries.Count == 0 || Core!.Role != RaftRole.Leader) return;
        var state = rd.HardState ?? Core.HardState;
        if (state.Term != Disk.HardState.Term || state.Vote != Disk.HardState.Vote) return;
        foreach (var m in rd.Messages)
        {
            if (m.Type != MessageType.Append) continue;
            _sim.Send(m);
            _sentEarly.Add(m);
        }
    }

    private void Send(Ready rd)
    {
        foreach (var m in rd.Messages)
        {
            if (_sentEarly.Remove(m)) continue;
            if (m.Type == MessageType.Snapshot) StartSnapshotTransfer(m);
            else _sim.Send(m);
        }
    }

    /// <summary>
    /// As NodeHost.StartSnapshotTransfer: the snapshot sent is the state machine at its applied index
    /// A (at or past the compacted index, so it serves as well), with the metadata at A; the data
    /// travels out of band and the message is stepped on the follower only once all of it arrived.
    /// </summary>
    private void StartSnapshotTransfer(RaftMessage request)
    {
        var core = Core!;
        var metadata = core.MetadataAt(Machine.Applied);
        var message = request with { Index = metadata.Index, LogTerm = metadata.Term, Voters = metadata.Voters, Learners = metadata.Learners };
        _sim.SendSnapshot(this, message, Machine.ForTransfer(withRange: _sim.Options.Mutant != Mutant.SnapshotCarriesNoRange));
    }

    /// <summary>As NodeHost.InstallSnapshot: the staged data becomes the state machine (durably; with the range it carries: KvMachine.InstalledOver),
    /// then the log is discarded.</summary>
    private void InstallSnapshot(SnapshotMetadata snap)
    {
        if (snap.Index == 0)
        {
            // A joining node learned the membership from the leader's first append: record it durably (NodeHost does the same).
            if (_sim.Options.Mutant != Mutant.JoinerMembershipNotRecorded) Disk.RecordMembership(snap);
            return;
        }
        var data = _installing ?? throw new InvalidOperationException($"node {Id}: the core installs a snapshot at {snap.Index} that was not received");
        if (data.Applied != snap.Index) throw new InvalidOperationException($"node {Id}: snapshot data at {data.Applied} installed as {snap.Index}");
        _installing = null;
        Machine = data.InstalledOver(Machine);
        Disk.Install(snap, Machine);
        _sim.ObserveDurableLog(Group);
        _sim.ObserveSnapshotInstalled(this, snap);
    }

    /// <summary>As NodeHost.MaybeCompact: make the state machine durable, then compact the log some entries below the applied index.</summary>
    private void MaybeCompact()
    {
        int every = _sim.Options.CompactEvery;
        if (every == 0 || !Up) return;
        long target = Machine.Applied - _sim.Options.CompactKeep;
        if (target - Core!.LastSnapshot.Index < every) return;
        SetMachineCheckpoint();
        Core.Compact(target);
        Disk.Compact(Core.LastSnapshot);
        _sim.ObserveCompaction(this, target);
    }

    /// <summary>The whole snapshot data arrived from <paramref name="m"/>'s sender: stage it and step the message.</summary>
    public void ReceiveSnapshot(RaftMessage m, KvMachine data)
    {
        long before = Core!.LastSnapshot.Index;
        Core.Step(m);
        // As NodeHost.OnSnapshotChunk: keep the data only when the core took the snapshot (its
        // snapshot index moved). A transfer the core ignores (stale: at or below its commit index)
        // must not replace the data of an accepted one still waiting to be installed (seen with a
        // slow disk: accepted 601, then a late transfer of 599 arrived before the Ready was written).
        if (Core.LastSnapshot.Index != before) Staged = (m.Index, data);
        Pump();
    }

    private void Apply(LogEntry e)
    {
        if (e.Index <= Machine.Applied) return; // replay below the checkpoint is idempotent, as in KvStore.Apply
        var results = Machine.Apply(e, checkOwnership: !OwnershipAtProposal);
        _sim.ObserveApply(this, e, results);
        if (Machine.LastSplit is { } split) _sim.ObserveSplitApplied(this, e, split.Split, split.Moved);
        _sim.MaybeCheckpoint(this);
        // The host learns that this node was removed when it applies (so: committed) its own removal.
        if (e.Type == EntryType.ConfChange && ConfChange.TryDecode(e.Data, out var cc)
            && cc.Type == ConfChangeType.RemoveNode && cc.NodeId == Id)
            _sim.ObserveOwnRemoval(this);
        if (!_pendingByIndex.Remove(e.Index, out var p)) return;
        if (e.Term != p.Term)
        {
            _sim.Reply(this, p.Request, ReplyKind.Lost, null, Core!.Leader);
            return;
        }
        if (results.Count > 0 && results[0].WrongShard)
        {
            // The entry was proposed with an older map for a key its shard split off: nothing written, routed again.
            _sim.Reply(this, p.Request, ReplyKind.WrongShard, null, Core!.Leader);
            return;
        }
        _sim.ObserveWriteAnswered(p.Request.OpId, e, Core!.Term);
        _sim.Reply(this, p.Request, ReplyKind.Ok, Output(p.Request.Input, results[0]), Core!.Leader, at: 2 * (_sim.IndexBase(Group) + e.Index));
    }

    /// <summary>What the client of a write is told, from the result of applying it (as the product's routers report it).</summary>
    internal static KvOutput Output(KvInput input, KvOpResult r) => input.Kind switch
    {
        KvOpKind.Put => new KvOutput(true, null, r.Version),
        KvOpKind.Delete => new KvOutput(r.Existed, null, 0),
        _ => new KvOutput(r.Applied, null, r.Applied ? r.Version : r.ActualVersion),
    };

    private void CompleteWaiters()
    {
        if (!Up || _awaitingApply.Count == 0) return;
        long applied = Machine.Applied;
        var ready = _awaitingApply.Where(w => w.Index <= applied).ToList();
        _awaitingApply.RemoveAll(w => w.Index <= applied);
        foreach (var (_, r) in ready) ServeRead(r);
    }

    private void ServeRead(ClientRequest r)
    {
        // As ClusterNode.ReadLocal: a shard that no longer owns the key (it split) refuses the read; the router tries again.
        if (!Machine.Owns(r.Input.Key))
        {
            _sim.Reply(this, r, ReplyKind.WrongShard, null, Core!.Leader);
            return;
        }
        var (value, version) = Machine.Get(r.Input.Key);
        _sim.Reply(this, r, ReplyKind.Ok, new KvOutput(value is not null, value, version), Core!.Leader, at: 2 * (_sim.IndexBase(Group) + Machine.Applied) + 1);
    }

    public void SetMachineCheckpoint() => Disk.Checkpoint = Machine.Clone();
}
