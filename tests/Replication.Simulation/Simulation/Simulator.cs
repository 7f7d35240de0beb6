using Replication.Engine.Raft;
using Replication.Engine.Storage;
using Replication.Engine.Verification;

namespace Replication.Simulation.Simulation;

/// <summary>
/// A seeded, deterministic simulation of one Raft group (more once shards split: Simulator.Splits.cs) in one process on logical time
/// (DESIGN.md "The consensus core is a pure state machine"). It drives the real
/// <see cref="RaftNode"/> through <see cref="SimNode"/> hosts that follow the product's NodeHost
/// rules, over a simulated network that drops, delays (also past an election timeout),
/// duplicates and reorders messages and is partitioned (symmetrically, asymmetrically, or one node
/// from the leader only) in ways that change over time, a partition sometimes holding messages
/// until it heals; nodes crash (losing what is not durable: a write in progress commits whole or
/// not at all) and restart, pause while the others' time runs on (Simulator.Pauses.cs), tick at
/// slightly different rates, disks turn slow, and leadership is transferred. Clients run put, get
/// (ReadIndex and lease), delete and compare-and-set with timeouts on a few keys.
///
/// A run: faults and load for <see cref="SimOptions.ChaosTicks"/>; then everything heals; then
/// one linearizable read and one write per key, which must be answered within
/// <see cref="ProgressTicks"/>; then all replicas must converge. Checked throughout: at most one
/// leader per term and one vote per voter and term; a leader holding a lease leads the newest
/// term; every node applies a prefix of one common sequence; Leader Completeness on the durable
/// logs, whenever an entry is first applied and after every later log change; a leader refuses a
/// second membership change while one is pending; the core never throws. Checked at the end: the
/// history is linearizable, decided within the checker's budget (the final reads are part of it,
/// so no acknowledged write may be lost) and all state machines are equal.
///
/// Everything comes from <see cref="SimOptions.Seed"/> through one <see cref="Random"/>, events
/// are ordered by (time, sequence number), and no wall clock is read: a seed replays exactly.
/// Nodes compact their logs and stream snapshots to followers that fall behind (SimNode, as
/// NodeHost.Snapshots.cs), with transfers that are slow, lost, or cut by a crash on either side.
/// Membership changes (Simulator.Membership.cs) add brand-new nodes and remove followers and
/// leaders during the faults; the checks then use the configuration each node's log holds, and the
/// final convergence covers the final members only. To add a fault: a kind in
/// <see cref="FaultKind"/>, its action in <see cref="InjectFault"/>, and its durable state in
/// <see cref="SimDisk"/>. Not thread-safe; one instance per run.
/// </summary>
public sealed partial class Simulator
{
    private readonly Random _rng;
    private readonly PriorityQueue<object, (long Time, long Seq)> _events = new();
    private readonly List<SimNode> _nodes;
    private readonly bool[,] _blocked;
    private readonly Dictionary<(int, int), long> _lastDelivery = new();
    /// <summary>Messages a partition holds (<see cref="MaybeHold"/>), delivered when their link opens.</summary>
    private readonly List<RaftMessage> _held = new();
    // The invariants' records are per Raft group (shard): a split adds groups (Simulator.Splits.cs).
    private readonly Dictionary<(int Group, long Term), int> _leaderOfTerm = new();
    private readonly Dictionary<int, long> _newestLeaderTerm = new();
    private readonly Dictionary<(int Group, long Index), (long Term, byte[] Data)> _appliedLog = new();
    private readonly Dictionary<(int Group, long Index, long Term), (int Op, KvInput Input)> _proposedOps = new();
    private readonly Dictionary<(int Group, long Index, long Term), int> _proposer = new();
    /// <summary>Per client write: when some replica first applied it, at which index, and what applying it returned.</summary>
    private readonly Dictionary<int, (long At, long Index, KvOutput Output)> _firstApplied = new();
    private readonly Dictionary<(int Voter, long Term), int> _votes = new();
    /// <summary>Per group, the committed entry with the highest index some replica applied.</summary>
    private readonly Dictionary<int, LogEntry> _committedTip = new();
    private readonly SimResult _result;
    private long _seq;
    private long _historyClock;
    private ulong _digest = 14695981039346656037UL;
    private bool _healed;
    private int _cutOnHandover;
    private int _isolateAfterAck;
    private bool _stopped;

    public Simulator(SimOptions options)
    {
        Options = options;
        _rng = new Random(options.Seed);
        var founders = options.Ring ? RingFounders() : Enumerable.Range(1, options.Nodes).ToArray();
        _nodes = Enumerable.Range(1, options.Nodes).Select(id => new SimNode(this, id, founders.Contains(id) ? founders : [], DrawTickPeriod())).ToList();
        foreach (var n in _nodes.Where(n => !founders.Contains(n.Id))) n.Retire(); // ring mode: a machine that hosts no replica
        _desiredVoters.UnionWith(founders);
        _blocked = new bool[MaxNodeId + 1, MaxNodeId + 1];
        _clients = Enumerable.Range(1, options.Clients + options.Keys).Select(id => new SimClient(id, id > options.Clients, _map)).ToArray();
        _result = new SimResult { Options = options };
    }

    public SimOptions Options { get; }
    public long Now { get; private set; }
    private long ChaosEnd => (long)Options.ChaosTicks * SimOptions.TickUnits;
    /// <summary>
    /// Ticks after healing within which every final client's read and write must be answered (see
    /// CheckProgress): 20 election timeouts. Measured on seeds 1-10,000: median 10, 99th percentile
    /// 47, worst 83 (a client timeout of up to 45 ticks included).
    /// </summary>
    internal const int ProgressTicks = 300;
    /// <summary>Hard bound on a run: healing must lead to a converged cluster well before this.</summary>
    private long Deadline => ChaosEnd + 4000L * SimOptions.TickUnits;

    /// <summary>Runs one seed to the end and checks it.</summary>
    public static SimResult Run(SimOptions options) => new Simulator(options).Run();

    private SimResult Run()
    {
        foreach (var n in _nodes)
        {
            if (!n.Retired) n.Start();
            Schedule(1 + _rng.Next(SimOptions.TickUnits), new TickEvent(n.Id));
        }
        foreach (var c in _clients.Where(c => !c.Final)) Schedule(SimOptions.TickUnits * (5 + _rng.Next(20)), new IssueEvent(c.Id));
        Schedule(NextFaultDelay(), new FaultEvent());
        Schedule(ChaosEnd, new HealEvent());
        Schedule(SimOptions.TickUnits, new MembershipEvent());
        if (Options.ForcedRecovery) Schedule(ForcedRecoveryTime(), new ForcedRecoveryEvent());
        if (Options.Splits) ScheduleSplits(); // Simulator.Splits.cs

        long processed = 0;
        while (!_stopped && _events.TryDequeue(out var ev, out var at))
        {
            if (at.Time > Deadline)
            {
                Violation($"no convergence within {(Deadline - ChaosEnd) / SimOptions.TickUnits} ticks after healing: {Describe()}");
                break;
            }
            Now = at.Time;
            processed++;
            try
            {
                Dispatch(ev);
            }
            catch (Exception ex)
            {
                Violation($"exception while handling {ev}: {ex.GetType().Name}: {ex.Message}");
            }
        }
        _result.EndTime = Now;
        _result.Digest = _digest;
        if (_result.Ok) FinalChecks();
        return _result;
    }

    private void Dispatch(object ev)
    {
        switch (ev)
        {
            case TickEvent t:
                var tn = Node(t.Node);
                if (IsPaused(t.Node)) tn.MissedTicks++;
                else if (tn.Up)
                {
                    tn.Tick();
                    MaybeSendLiveness(tn); // Simulator.Quiescence.cs
                }
                Schedule(tn.NextTickDelay(), t);
                if (t.Node == 1 && _nodes.Count(x => x.Up && x.Core!.Role == RaftRole.Leader) > 1) Count("tick with two leaders");
                if (_healed && t.Node == 1) CheckSettled();
                break;
            case DeliverEvent d:
                var dn = Node(d.Message.To);
                Mix(1, d.Message.From, d.Message.To, (long)d.Message.Type, d.Message.Term, d.Message.Index);
                if (!dn.Up || FromDestroyed(d.Message)) return;
                if (Blocked(d.Message.From, d.Message.To))
                {
                    MaybeHold(d.Message);
                    return;
                }
                if (IsPaused(dn.Id))
                {
                    Defer(dn.Id, d.Message.From, d);
                    return;
                }
                TraceLine(d.Message.ToString);
                if (d.Message.Type == MessageType.TimeoutNow) OnHandover(d.Message);
                dn.Step(d.Message);
                if (d.Message.Type == MessageType.HeartbeatResponse) OnHeartbeatAcknowledged(d.Message);
                break;
            case PumpEvent p:
                var pn = Node(p.Node);
                if (IsPaused(p.Node)) Defer(p.Node, 0, p);
                else if (pn.Up && pn.Epoch == p.Epoch) pn.Pump();
                break;
            case PersistDoneEvent pd:
                var pdn = Node(pd.Node);
                if (IsPaused(pd.Node)) Defer(pd.Node, 0, pd);
                else if (pdn.Up && pdn.Epoch == pd.Epoch && pdn.Persisting is not null) pdn.PersistDone();
                break;
            case RestartEvent r:
                var rn = Node(r.Node);
                if (!rn.Up && rn.Epoch == r.Epoch) Restart(rn);
                break;
            case SlowDiskEndEvent s:
                Node(s.Node).SlowDiskTicks = 0;
                break;
            case FaultEvent:
                if (Now >= ChaosEnd) return;
                InjectFault();
                Schedule(NextFaultDelay(), new FaultEvent());
                break;
            case HealEvent:
                Heal();
                break;
            case ProgressDeadlineEvent:
                CheckProgress();
                break;
            case SnapshotArrivalEvent sa:
                if (IsPaused(sa.Message.To)) Defer(sa.Message.To, sa.Message.From, sa);
                else if (IsPaused(sa.Message.From)) Defer(sa.Message.From, 0, sa);
                else OnSnapshotArrival(sa);
                break;
            case ResumeEvent re:
                if (Node(re.Node).Epoch == re.Epoch) Resume(re.Node, re.Isolate);
                break;
            case ResumedWork rw:
                DispatchResumed(rw);
                break;
            case CatchUpEvent cu:
                var cn = Node(cu.Node);
                if (cn.Up && cn.Epoch == cu.Epoch && !IsPaused(cu.Node)) cn.CatchUp(cu.Ticks, 0);
                break;
            case MembershipEvent:
                DriveMembership();
                break;
            case RetireEvent re:
                Retire(re);
                break;
            case DropEvent de:
                Drop(de);
                break;
            case SplitEvent:
                StartSplit();
                break;
            case SplitDriveEvent:
                DriveSplits();
                break;
            case SplitCrashEvent sc:
                CrashAfterSplit(sc);
                break;
            case LivenessEvent le:
                OnLiveness(le);
                break;
            case ForcedRecoveryEvent:
                if (Now < ChaosEnd) ForceRecovery(); // Simulator.ForcedRecovery.cs
                break;
            default:
                DispatchClient(ev);
                break;
        }
        foreach (var n in _nodes) ObserveRole(n);
        foreach (var n in _children) ObserveRole(n);
    }

    /// <summary>A replica by raft id: shard 0's are 1.., the split groups' <see cref="ChildBase"/>.. (Simulator.Splits.cs).</summary>
    internal SimNode Node(int id) => id >= ChildBase ? _children[id - ChildBase] : _nodes[id - 1];

    /// <summary>Whether the link between the machines of two replicas is cut (a split group's replica shares its machine's links).</summary>
    /// A replica of a split shard on a machine that hosts no shard-0 replica has no anchor there (<see cref="SimNode.Anchor"/> is
    /// itself): partitions do not cut it (drops, delays and crashes still reach it).
    private bool Blocked(int from, int to) => Node(from).Anchor is var a && Node(to).Anchor is var b && a < ChildBase && b < ChildBase && _blocked[a, b];

    internal int DeriveSeed(int node, int incarnation) => unchecked(Options.Seed * 1_000_003 + node * 7919 + incarnation * 31);

    private void Schedule(long delay, object ev)
    {
        _events.Enqueue(ev, (Now + delay, ++_seq));
    }

    internal void SchedulePump(SimNode n) => Schedule(1, new PumpEvent(n.Id, n.Epoch));

    internal void SchedulePersistDone(SimNode n, int ticks) => Schedule((long)ticks * SimOptions.TickUnits, new PersistDoneEvent(n.Id, n.Epoch));

    /// <summary>Puts a message on the network: it may be dropped, delayed (and so reordered) or duplicated.</summary>
    internal void Send(RaftMessage m)
    {
        if (m.Type == MessageType.VoteResponse && !m.Reject) ObserveVote(m);
        if (m.Type == MessageType.Quiesce) Count("quiesce sent");
        if (Blocked(m.From, m.To))
        {
            Count("partitioned message");
            MaybeHold(m);
            return;
        }
        bool faulty = !_healed;
        if (faulty && _rng.NextDouble() < Options.DropRate)
        {
            Count("drop");
            return;
        }
        int copies = faulty && _rng.NextDouble() < Options.DuplicateRate ? 2 : 1;
        if (copies == 2) Count("duplicate");
        for (int i = 0; i < copies; i++)
        {
            long delay = 1 + _rng.Next(3);
            // A duplicate is often a late one (a retransmission from before a reconnect).
            bool late = i == 1 && _rng.Next(2) == 0;
            if (late || (faulty && _rng.NextDouble() < Options.LongDelayRate))
            {
                if (late || _rng.NextDouble() < Options.StaleDelayRate)
                {
                    long timeout = (long)Options.ElectionTicks * SimOptions.TickUnits;
                    delay = timeout + _rng.NextInt64(timeout);
                    Count("delay beyond election timeout");
                }
                else
                {
                    delay = 4 + _rng.Next(Options.LongDelayUnits);
                    Count("delay");
                }
            }
            long at = Now + delay;
            var link = (m.From, m.To);
            if (_lastDelivery.TryGetValue(link, out long last) && at < last) Count("reorder");
            else _lastDelivery[link] = at;
            Schedule(delay, new DeliverEvent(m));
        }
    }

    /// <summary>A partition stops <paramref name="m"/>: it may hold it until the link heals (<see cref="SimOptions.PartitionHoldRate"/>).</summary>
    private void MaybeHold(RaftMessage m)
    {
        if (_healed || _rng.NextDouble() >= Options.PartitionHoldRate) return;
        _held.Add(m);
        Count("held by partition");
    }

    /// <summary>Links opened: the messages held on them arrive now, a little spread out, long after they were sent.</summary>
    private void ReleaseHeld()
    {
        if (_held.Count == 0) return;
        var open = _held.Where(m => !Blocked(m.From, m.To)).ToList();
        _held.RemoveAll(m => !Blocked(m.From, m.To));
        foreach (var m in open)
        {
            Count("delivered after partition");
            Schedule(1 + _rng.Next(Options.ElectionTicks * SimOptions.TickUnits), new DeliverEvent(m));
        }
    }

    /// <summary>
    /// A leader's host streams a snapshot to a follower: the transfer takes a few ticks, may be lost
    /// (drop, partition at arrival, either side crashing meanwhile), and ends with exactly one
    /// ReportSnapshot on the sender, as in NodeHost.
    /// </summary>
    internal void SendSnapshot(SimNode from, RaftMessage m, KvMachine data)
    {
        Count("snapshot sent");
        long ticks = 1 + _rng.Next(_healed ? 3 : 20);
        Schedule(ticks * SimOptions.TickUnits, new SnapshotArrivalEvent(m, data, from.Epoch, Node(m.To).Epoch));
    }

    private void OnSnapshotArrival(SnapshotArrivalEvent a)
    {
        var m = a.Message;
        var from = Node(m.From);
        var to = Node(m.To);
        bool lost = !_healed && _rng.NextDouble() < 3 * Options.DropRate;
        bool ok = !lost && to.Up && to.Epoch == a.ToEpoch && !Blocked(m.From, m.To) && from.Up && from.Epoch == a.FromEpoch;
        Mix(7, m.From, m.To, m.Index, ok ? 1 : 0, 0);
        TraceLine(() => $"snapshot {m.Index}@{m.LogTerm} {m.From}->{m.To} {(ok ? "arrived" : "lost")}");
        if (!ok) Count("snapshot lost");
        if (ok) to.ReceiveSnapshot(m, a.Data);
        if (from.Up && from.Epoch == a.FromEpoch)
        {
            from.Core!.ReportSnapshot(m.To, ok, m.Index);
            from.Pump();
        }
    }

    internal void ObserveSnapshotInstalled(SimNode n, SnapshotMetadata snap)
    {
        Count("snapshot installed");
        Mix(8, n.Id, snap.Index, snap.Term, 0, 0);
        TraceLine(() => $"node {n.Id} installs {snap}");
    }

    internal void ObserveCompaction(SimNode n, long index)
    {
        Count("compaction");
        Mix(9, n.Id, index, 0, 0, 0);
    }

    internal void MaybeCheckpoint(SimNode n)
    {
        // The product commits its state machine lazily: a crash may lose recent applies (the log replays them).
        if (_rng.Next(3) == 0) n.SetMachineCheckpoint();
    }

    /// <summary>
    /// Invariants, after every event: at most one leader per term (Election Safety, paper Figure 3);
    /// and a leader that holds a lease (would serve a lease read now) leads the newest term anyone
    /// was ever elected in (thesis 6.4.1, RaftNode.Read.cs: while the lease holds, a quorum refuses
    /// to elect anyone else). The second is checked whether or not a client asks for a read, so a
    /// lease that outlives its guarantee is caught even when no write lands in the window; a paused
    /// node is checked once it resumes, as it can serve nothing before.
    /// </summary>
    internal void ObserveRole(SimNode n)
    {
        if (!n.Up || n.Core!.Role != RaftRole.Leader) return;
        long term = n.Core.Term;
        int g = n.Group;
        if (_leaderOfTerm.TryGetValue((g, term), out int other))
        {
            if (other != n.Id) Violation($"two leaders in term {term} of shard {g}: nodes {other} and {n.Id}");
        }
        else
        {
            _leaderOfTerm[(g, term)] = n.Id;
            _newestLeaderTerm[g] = Math.Max(_newestLeaderTerm.GetValueOrDefault(g), term);
            TraceLine(() => $"node {n.Id} leads term {term} of shard {g}");
        }
        // A paused node serves nothing until its host has caught its clock up (Simulator.Pauses.cs).
        long newest = _newestLeaderTerm[g];
        if (newest > term && !IsPaused(n.Id) && n.Core.LeaseIndexNow() >= 0)
            Violation($"node {n.Id} holds a lease in term {term} of shard {g}, but node {_leaderOfTerm[(g, newest)]} was elected leader of term {newest}");
    }

    /// <summary>
    /// Invariant: a voter grants at most one candidate its vote in a term (paper Figure 2, votedFor;
    /// Election Safety rests on it). Observed on the wire, so a host or storage that loses a vote
    /// is caught even when the second grant does not complete a second majority.
    /// </summary>
    private void ObserveVote(RaftMessage grant)
    {
        if (_votes.TryGetValue((grant.From, grant.Term), out int first) && first != grant.To)
            Violation($"node {grant.From} granted its vote in term {grant.Term} to {first} and to {grant.To}");
        else _votes[(grant.From, grant.Term)] = grant.To;
    }

    /// <summary>
    /// Invariant (Leader Completeness, paper 5.4; the reason for the Figure 8 rule): once an entry is
    /// committed (some replica applies it), no node whose log lacks it may be able to win an
    /// election. Checked on durable logs the moment the entry is first applied, and again for the
    /// latest committed entry after every later change of a durable log (<see cref="ObserveDurableLog"/>):
    /// for every node without the entry that is a voter in the configuration its own durable log holds (the one
    /// it would count votes with after a restart: thesis 4.1, a configuration takes effect on
    /// append), count the voters of that configuration, still running or restartable (not shut down
    /// for good), whose log is not more up-to-date than its own (paper 5.4.1: they could grant it
    /// their vote); a majority of that configuration would let it overwrite a committed entry. In a
    /// correct Raft with single-server changes every such majority meets a server holding the entry
    /// or a later-term one (thesis 4.1-4.2), so the check holds across membership changes too.
    /// </summary>
    /// <summary>
    /// Whether a node could grant a vote now or after a restart: the core refuses every vote while it knows no configuration
    /// at all (a joining replica that has heard from no leader: RaftNode.Election.cs, HandleVoteRequest), from its
    /// memory or, after a restart, from its disk; either one knowing counts. Everyone may under the mutant that lifts the rule.
    /// </summary>
    private bool MayGrantVotes(SimNode v) =>
        Options.Mutant == Mutant.EmptyReplicaVotes
        || v.Core is { } core && (core.Voters.Count > 0 || core.Learners.Count > 0)
        || v.Disk.Snapshot is not null || v.Disk.BootstrapVoters.Count > 0;

    private void CheckCommitIsSafe(int group, LogEntry e)
    {
        foreach (var n in GroupNodes(group))
        {
            if (n.Retired || n.Disk.Has(e.Index, e.Term)) continue;
            var config = n.Disk.Voters();
            if (!config.Contains(n.Id)) continue; // never campaigns with this log
            var (lastIndex, lastTerm) = n.Disk.Last;
            var voters = config.Where(id => Exists(id) && !Node(id).Retired && MayGrantVotes(Node(id))).Where(id =>
            {
                var (vi, vt) = Node(id).Disk.Last;
                return lastTerm > vt || (lastTerm == vt && lastIndex >= vi);
            }).ToList();
            if (voters.Count >= config.Count / 2 + 1)
            {
                Violation($"entry {e.Index}@{e.Term} of shard {group} is committed, but node {n.Id} (last {lastIndex}@{lastTerm}, voters {{{string.Join(",", config)}}}) lacks it and could be elected by {{{string.Join(",", voters)}}}");
                return;
            }
        }
    }

    /// <summary>
    /// A node's durable log changed (entries written, possibly truncating others, or a snapshot
    /// installed): Leader Completeness is checked again for the latest committed entry. A log that
    /// held it may have lost it (a truncation of committed entries, by a stale append say), or a log
    /// without it may have become electable; checking only when an entry is first applied missed both.
    /// Checking the latest entry covers the earlier ones: a log that holds it holds them (Log Matching).
    /// </summary>
    internal void ObserveDurableLog(int group)
    {
        if (_committedTip.TryGetValue(group, out var tip)) CheckCommitIsSafe(group, tip);
    }

    /// <summary>A client operation became the entry at (index, term) of a leader's log.</summary>
    internal void ObserveProposal(SimNode leader, long index, long term, int opId, KvInput input)
    {
        _proposedOps[(leader.Group, index, term)] = (opId, input);
        _proposer[(leader.Group, index, term)] = leader.Id;
    }

    /// <summary>
    /// A node crashed: what it proposed in a term it had not made durable (its vote for itself lost with the write) is
    /// gone from everywhere (a host writes a new term before it sends anything in it, appends included), and its
    /// (index, term) may be used again. Only a group of one voter does that: its vote for itself in a term may be lost
    /// with the write, and it then leads that term again after the restart, with other entries (seen after a forced
    /// recovery). Without this, a later entry there was taken for the lost operation. What it proposed in a durable
    /// term is kept even if its own write was lost: its appends may have left before that write (SendAppendsEarly), a
    /// follower may hold the entry and it may commit, and the term cannot be led again, so (index, term) stays its own.
    /// </summary>
    internal void ForgetUnwrittenProposals(SimNode n)
    {
        var durable = n.Disk.HardState;
        bool TermLost(long term) => durable.Term < term || (durable.Term == term && durable.Vote != n.Id);
        foreach (var (key, node) in _proposer.Where(p => p.Value == n.Id && p.Key.Group == n.Group && !n.Disk.Has(p.Key.Index, p.Key.Term) && TermLost(p.Key.Term)).ToList())
        {
            _proposer.Remove(key);
            _proposedOps.Remove(key);
        }
    }

    /// <summary>Invariant: every node applies a prefix of one common sequence (State Machine Safety).</summary>
    internal void ObserveApply(SimNode n, LogEntry e, IReadOnlyList<KvOpResult> results)
    {
        Mix(2, n.Id, e.Index, e.Term, 0, 0);
        int g = n.Group;
        if (_appliedLog.TryGetValue((g, e.Index), out var known))
        {
            if (known.Term != e.Term || !known.Data.AsSpan().SequenceEqual(e.Data))
                Violation($"node {n.Id} applied {e} at index {e.Index} of shard {g}, but another node applied an entry of term {known.Term} there");
            return;
        }
        _appliedLog[(g, e.Index)] = (e.Term, e.Data);
        if (e.Index > (_committedTip.TryGetValue(g, out var tip) ? tip.Index : 0)) _committedTip[g] = e;
        CheckCommitIsSafe(g, e);
        // A write refused as WrongShard had no effect: it stays unbounded here, so a client that gave up on it records a failure.
        if (_proposedOps.TryGetValue((g, e.Index, e.Term), out var op) && !InvokedBeforeRecovery(op.Op) && results is [{ WrongShard: false }, ..])
            _firstApplied[op.Op] = (++_historyClock, IndexBase(g) + e.Index, SimNode.Output(op.Input, results[0]));
    }

    /// <summary>
    /// Bounds the operations whose client gave up, with what the replicas did: a write that no
    /// replica ever applied had no effect (failed); one that some replica applied took effect before
    /// that first apply (its entry was committed by then), so it "returns" there, with the result
    /// that apply computed (every replica applies the same entry at that index alike: checked by
    /// ObserveApply). These are facts about the state machines, not assumptions about the protocol:
    /// in a correct system the log order with these results is a linearization, so they can never
    /// make a correct run fail; they only take away choices the search would otherwise try.
    /// </summary>
    private List<HistoryOp> BoundedHistory() => _result.History.Select(o =>
        o.Status != OpStatus.Unknown || o.Input.Kind == KvOpKind.Get ? o
        : _firstApplied.TryGetValue(o.Id, out var first) ? o with { Return = first.At, Output = first.Output, At = 2 * first.Index }
        : o with { Status = OpStatus.Failed, Return = o.Invoke }).ToList();

    private void Violation(string what)
    {
        // Only the first violation of the run is reported (later ones are usually its consequences).
        // Not "_stopped": a settled run is stopped too, and its final checks must still report.
        if (!_result.Ok) return;
        _result.Violations.Add($"t={Now / SimOptions.TickUnits}.{Now % SimOptions.TickUnits}: {what}");
        _result.Trace.Add("VIOLATION " + what);
        _stopped = true;
    }

    private void Count(string fault)
    {
        _result.Faults[fault] = _result.Faults.GetValueOrDefault(fault) + 1;
    }

    private void TraceLine(Func<string> line)
    {
        if (Options.Trace) _result.Trace.Add($"{Now / SimOptions.TickUnits,6}.{Now % SimOptions.TickUnits} {line()}");
    }

    /// <summary>Folds an event into the run's digest (FNV-1a over a few numbers).</summary>
    private void Mix(long a, long b, long c, long d, long e, long f)
    {
        foreach (long v in stackalloc long[] { Now, a, b, c, d, e, f })
        {
            _digest ^= unchecked((ulong)v);
            _digest *= 1099511628211UL;
        }
    }

    private string Describe() => string.Join("; ", _nodes.Concat(_children).Select(n => n.Up ? n.Core!.ToString() : $"node {n.Id}{(n.Group == 0 ? "" : " g" + n.Group)} down"));

    private sealed record TickEvent(int Node);
    private sealed record DeliverEvent(RaftMessage Message);
    private sealed record PumpEvent(int Node, int Epoch);
    private sealed record PersistDoneEvent(int Node, int Epoch);
    private sealed record RestartEvent(int Node, int Epoch);
    private sealed record SlowDiskEndEvent(int Node);
    private sealed record FaultEvent;
    private sealed record HealEvent;
    private sealed record ProgressDeadlineEvent;
    private sealed record SnapshotArrivalEvent(RaftMessage Message, KvMachine Data, int FromEpoch, int ToEpoch);
}
