using System.Diagnostics;

namespace Replication.Engine.Raft;

/// <summary>
/// The Raft consensus core for one node of one group: a pure, deterministic state machine in the
/// style of etcd's raft library. It has no threads, sockets, files or clock. Inputs:
/// <see cref="Tick"/> (logical time), <see cref="Step"/> (a message from a peer),
/// <see cref="Propose"/>, <see cref="ReadIndex"/>, <see cref="TransferLeadership"/>. Output: a
/// <see cref="Ready"/> batch (see its ordering contract), acknowledged with <see cref="Advance"/>.
///
/// Not thread-safe: exactly one owner (the node host's loop, or the simulator) calls it.
/// References: Ongaro &amp; Ousterhout, "In Search of an Understandable Consensus Algorithm" (the
/// paper; sections 5.x) and Ongaro's PhD thesis "Consensus: Bridging Theory and Practice" (thesis x.y).
///
/// The file is split by concept: RaftNode.Election.cs (terms, votes, pre-vote, check-quorum),
/// RaftNode.Replication.cs (append, commit, flow control, leader transfer), RaftNode.Read.cs
/// (ReadIndex and lease reads), RaftNode.Snapshot.cs (log compaction, InstallSnapshot),
/// RaftNode.Membership.cs (learners, single-server membership changes, and their safety argument).
/// </summary>
public sealed partial class RaftNode
{
    /// <summary>Vote context marking an election started by leader transfer (TimeoutNow): voters
    /// grant it even while they believe a leader is alive, since that leader asked for it.</summary>
    internal const long CampaignTransferContext = 1;

    private readonly RaftConfig _cfg;
    private readonly RaftLog _log;
    private readonly Dictionary<int, Progress> _progress = new();
    private readonly HashSet<int> _voters;
    private readonly HashSet<int> _learners;
    private List<RaftMessage> _msgs = new();

    private int _electionElapsed;
    private int _heartbeatElapsed;
    private int _randomizedElectionTimeout;
    private HardState _prevHardState;
    private SoftState _prevSoftState;

    /// <summary>Creates a node from its persisted state (<see cref="HardState.Empty"/> and no entries for a new node).</summary>
    public RaftNode(RaftConfig config, HardState state, IEnumerable<LogEntry> entries)
        : this(config, state, entries, snapshot: null)
    {
    }

    /// <summary>
    /// Creates a node from its persisted state after log compaction: <paramref name="snapshot"/> is
    /// the metadata of the state-machine snapshot the host stored (null when it has none), and
    /// <paramref name="entries"/> the stored log after it (entries at or below the snapshot index
    /// are ignored). The membership is the snapshot's, then that of the ConfChange entries after it;
    /// without a snapshot it is <see cref="RaftConfig.Voters"/>/<see cref="RaftConfig.Learners"/>
    /// (the bootstrap membership), then the ConfChange entries of the log.
    /// </summary>
    public RaftNode(RaftConfig config, HardState state, IEnumerable<LogEntry> entries, SnapshotMetadata? snapshot)
    {
        config.Validate();
        _cfg = config;
        long snapIndex = snapshot?.Index ?? 0;
        _log = new RaftLog(entries.Where(e => e.Index > snapIndex), snapIndex, snapshot?.Term ?? 0)
        {
            KeepConflicts = (config.Mutation & RaftMutation.FollowerKeepsConflicts) != 0,
        };
        _baseConfig = snapshot is null
            ? Membership.From(config.Voters, config.Learners)
            : Membership.From(snapshot.Voters, snapshot.Learners);
        RebuildConfigHistory();
        _voters = new HashSet<int>();
        _learners = new HashSet<int>();
        SetCurrentConfig();
        Term = state.Term;
        Vote = state.Vote;
        long applied = Math.Max(config.Applied, snapIndex);
        _log.RestoreCommit(Math.Max(state.Commit, applied));
        _log.SetApplied(applied);
        _prevHardState = new HardState(Term, Vote, _log.Committed);
        BecomeFollower(Term, 0, "started");
        _prevSoftState = new SoftState(Leader, Role);
    }

    public int Id => _cfg.Id;
    public int Group => _cfg.Group;
    public long Term { get; private set; }
    /// <summary>Candidate voted for in <see cref="Term"/>; 0 = none.</summary>
    public int Vote { get; private set; }
    /// <summary>Leader this node believes in for <see cref="Term"/>; 0 = unknown.</summary>
    public int Leader { get; private set; }
    public RaftRole Role { get; private set; }
    public long Committed => _log.Committed;
    /// <summary>The current term, vote and commit index (what a Ready's HardState would carry).</summary>
    public HardState HardState => new(Term, Vote, _log.Committed);
    public long Applied => _log.Applied;
    /// <summary>Committed entries after <see cref="Applied"/>, up to <paramref name="upTo"/> (at most the commit index): what the
    /// host has yet to apply. The host uses it to serve a read at the applied state when none of them can change what the
    /// read returns (NodeHost.Requests.cs, a full state.db).</summary>
    public IReadOnlyList<LogEntry> CommittedNotApplied(long upTo) => _log.Slice(_log.Applied + 1, Math.Min(upTo, _log.Committed), int.MaxValue);
    public long LastIndex => _log.LastIndex;
    public long LastTerm => _log.LastTerm;
    /// <summary>Current voters: those of the latest configuration in the log, committed or not (see RaftNode.Membership.cs).</summary>
    public IReadOnlyCollection<int> Voters => _voters;
    /// <summary>Current learners (non-voting members), from the same configuration as <see cref="Voters"/>.</summary>
    public IReadOnlyCollection<int> Learners => _learners;
    /// <summary>Why the node last changed role, for operators (e.g. "election timeout", "higher term from 2").</summary>
    public string LastStateChangeReason { get; private set; } = "";
    /// <summary>Maintenance (Suspend-ReplicationNode): the node starts no campaign, neither on an election timeout nor
    /// when a leader hands over (TimeoutNow); it still votes and replicates. Leading already is not undone here.</summary>
    public bool Suspended { get; set; }
    /// <summary>Why this node's latest campaign began ("leader 2 lost: election timeout, then pre-vote won",
    /// "leadership transferred by 2"); what a leader's election event reports. Empty before any campaign.</summary>
    public string CampaignReason { get; private set; } = "";
    /// <summary>Ticks since the last contact with a leader (follower) or since the last check-quorum round (leader).</summary>
    public int ElectionElapsed => _electionElapsed;
    /// <summary>Target of an ongoing leader transfer; 0 = none.</summary>
    public int LeadTransferee { get; private set; }

    private bool IsPromotable => _voters.Contains(Id);
    private int Quorum => _voters.Count / 2 + 1;

    /// <summary>The leader's replication state of each member (empty unless leader): match index per node.</summary>
    public IReadOnlyDictionary<int, long> MatchIndexes() =>
        Role == RaftRole.Leader ? _progress.ToDictionary(p => p.Key, p => p.Value.Match) : new Dictionary<int, long>();

    /// <summary>
    /// The leader's knowledge of how far each member has applied (empty unless leader): its own
    /// applied index, and what followers last reported. Used for WriteConcern.All.
    /// </summary>
    public IReadOnlyDictionary<int, long> AppliedIndexes() =>
        Role == RaftRole.Leader ? _progress.ToDictionary(p => p.Key, p => p.Key == Id ? _log.Applied : p.Value.Applied) : new Dictionary<int, long>();

    /// <summary>Advances logical time by one tick, and runs the timers (election, heartbeat, check-quorum).</summary>
    public void Tick()
    {
        _ticks++;
        if (Role == RaftRole.Leader) TickLeader();
        else TickElection();
    }

    /// <summary>
    /// Advances logical time by <paramref name="ticks"/> ticks that the host does not deliver one by
    /// one with <see cref="Tick"/>: time that passed while its process was paused (a GC pause, a
    /// frozen VM, SIGSTOP) or too busy to tick. They count wherever elapsed time protects safety
    /// against another node's actions: the lease expires with them (RaftNode.Read.cs), and so does
    /// the vote refusal after a restart (<see cref="Step"/>). They fire no timer: no election,
    /// heartbeat, check-quorum round or transfer abort. A timer that runs slow costs availability
    /// only (a follower refusing votes for longer even keeps leases safe for longer); a lease that
    /// runs slow lets a deposed leader serve stale reads. So a host that must choose, after a long
    /// pause, between replaying every missed tick (which sends a whole process of followers into
    /// elections at once) and dropping them (which stretches the lease) passes them here.
    /// </summary>
    public void Elapse(long ticks)
    {
        Debug.Assert(ticks >= 0, "time does not run backwards");
        if (ticks > 0) _ticks += ticks;
    }

    /// <summary>
    /// Feeds one message from a peer. Handles the term rules once (paper 5.1: a higher term
    /// converts to follower; a lower term is stale), then dispatches by role.
    /// Messages for another group or node are ignored.
    /// </summary>
    public void Step(RaftMessage m)
    {
        if (m.Group != Group || m.To != Id) return;
        if (Quiesced) WakeOnMessage(m); // RaftNode.Quiesce.cs

        if (m.Term > Term)
        {
            if (m.Type is MessageType.Vote or MessageType.PreVote)
            {
                bool force = m.Context == CampaignTransferContext;
                // A node also counts as "in lease" for its first election timeout after (re)starting: it
                // may have acknowledged a leader's heartbeat just before a crash, and that leader's lease
                // (RaftNode.Read.cs) relies on it refusing votes for an election timeout afterwards.
                // (Bug fixed: a restarted voter granted votes at once, so a new leader could be elected
                // while the old one still served lease reads.)
                bool recentlyStarted = _ticks < _cfg.ElectionTicks;
                bool inLease = _cfg.CheckQuorum && ((Leader != 0 && _electionElapsed < _cfg.ElectionTicks) || recentlyStarted);
                // Thesis 4.2.3: a server that heard from a leader within the minimum election timeout
                // ignores vote requests, so a removed or partitioned server cannot depose a live leader.
                if (!force && inLease) return;
            }
            if (m.Type == MessageType.PreVote)
            {
                // A pre-vote never changes our term (thesis 9.6).
            }
            else if (m.Type == MessageType.PreVoteResponse && !m.Reject)
            {
                // A granted pre-vote carries the future term the candidate asked about; not a reason to step down.
            }
            else
            {
                int lead = m.Type is MessageType.Append or MessageType.Heartbeat or MessageType.Snapshot or MessageType.Quiesce ? m.From : 0;
                BecomeFollower(m.Term, lead, $"higher term {m.Term} from {m.From} ({m.Type})");
            }
        }
        else if (m.Term < Term && !MutantTakesStale(m))
        {
            if ((_cfg.CheckQuorum || _cfg.PreVote) && m.Type is MessageType.Append or MessageType.Heartbeat or MessageType.Snapshot or MessageType.Quiesce)
            {
                // A stale leader (e.g. partitioned away) would otherwise keep sending forever while we,
                // having ignored its higher-term voters thanks to pre-vote, never tell it of the new term.
                Send(new RaftMessage { To = m.From, Type = MessageType.AppendResponse, Term = Term });
            }
            else if (m.Type == MessageType.PreVote)
            {
                Send(new RaftMessage { To = m.From, Type = MessageType.PreVoteResponse, Term = Term, Reject = true });
            }
            return;
        }

        if (m.Type is MessageType.Vote or MessageType.PreVote)
        {
            HandleVoteRequest(m);
            return;
        }

        switch (Role)
        {
            case RaftRole.Leader: StepLeader(m); break;
            case RaftRole.Candidate:
            case RaftRole.PreCandidate: StepCandidate(m); break;
            default: StepFollower(m); break;
        }
    }

    /// <summary>Simulator mutant only (<see cref="RaftMutation.StaleAppendAccepted"/>): a stale append that a broken follower acts on.</summary>
    private bool MutantTakesStale(RaftMessage m) =>
        (_cfg.Mutation & RaftMutation.StaleAppendAccepted) != 0 && m.Type == MessageType.Append && Role == RaftRole.Follower;

    /// <summary>True when <see cref="GetReady"/> would return a non-empty batch.</summary>
    public bool HasReady =>
        _pendingSnapshot is not null || _msgs.Count > 0 || _readStates.Count > 0 || ReadRoundDue || _log.Stable < _log.LastIndex
        || new HardState(Term, Vote, _log.Committed) != _prevHardState
        || new SoftState(Leader, Role) != _prevSoftState
        || Math.Min(_log.Committed, _log.Stable) > _log.Applied;

    /// <summary>
    /// Takes the pending work. The caller must carry it out (see <see cref="Ready"/>) and call
    /// <see cref="Advance"/> before calling this again.
    /// </summary>
    public Ready GetReady()
    {
        StartQueuedReads(); // RaftNode.Read.cs: the reads queued since the last round share one heartbeat round
        var hs = new HardState(Term, Vote, _log.Committed);
        var ss = new SoftState(Leader, Role);
        var ready = new Ready
        {
            Snapshot = _pendingSnapshot,
            HardState = hs != _prevHardState ? hs : null,
            SoftState = ss != _prevSoftState ? ss : null,
            Entries = _log.Unstable(),
            Messages = _msgs,
            CommittedEntries = _log.NextCommitted(_cfg.MaxSizePerMessage * 4),
            ReadStates = _readStates,
        };
        _prevHardState = hs;
        _prevSoftState = ss;
        _msgs = new List<RaftMessage>();
        _readStates = new List<ReadState>();
        _pendingSnapshot = null;
        return ready;
    }

    /// <summary>The host has persisted, sent and applied everything in <paramref name="ready"/>.</summary>
    public void Advance(Ready ready)
    {
        if (ready.Entries.Count > 0)
        {
            var last = ready.Entries[^1];
            _log.StableTo(last.Index, last.Term);
            if (Role == RaftRole.Leader && _progress.TryGetValue(Id, out var self))
            {
                // The leader counts itself toward a quorum only for what it has made durable.
                self.MaybeUpdate(_log.Stable);
                if (MaybeCommit()) BroadcastAppend();
            }
        }
        if (ready.CommittedEntries.Count > 0) _log.SetApplied(ready.CommittedEntries[^1].Index);
    }

    private void Send(RaftMessage m)
    {
        Debug.Assert(m.To != Id, "never send to self");
        if (m.Type == MessageType.TimeoutNow) _leaseForfeited = true; // RaftNode.Read.cs: no lease after a handover starts
        // Responses to the leader report how far this node has applied, in their otherwise unused
        // Commit field, so the leader can tell when every voter has applied a write.
        long commit = m.Type is MessageType.AppendResponse or MessageType.HeartbeatResponse ? _log.Applied : m.Commit;
        _msgs.Add(m with { From = Id, Group = Group, Term = m.Term == 0 ? Term : m.Term, Commit = commit });
    }

    private void ResetRandomizedElectionTimeout() =>
        _randomizedElectionTimeout = _cfg.ElectionTicks + _cfg.Random.Next(_cfg.ElectionTicks);

    private void ResetProgress()
    {
        _progress.Clear();
        foreach (int v in _voters) _progress[v] = NewProgress(isLearner: false);
        foreach (int l in _learners) _progress[l] = NewProgress(isLearner: true);
        if (_progress.TryGetValue(Id, out var self))
        {
            self.MaybeUpdate(_log.Stable);
            self.RecentActive = true;
        }
    }

    private Progress NewProgress(bool isLearner) =>
        new(_log.LastIndex + 1, _cfg.MaxInflightMessages, _cfg.MaxInflightBytes, isLearner);

    public override string ToString() =>
        $"node {Id} g{Group} {Role} t{Term} lead {Leader} last {LastIndex}@{LastTerm} commit {Committed} applied {Applied}";
}
