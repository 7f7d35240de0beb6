namespace Replication.Engine.Raft;

/// <summary>
/// Linearizable reads without writing to the log (thesis 6.4).
///
/// ReadIndex: the leader notes its commit index, confirms it is still leader by hearing from a
/// quorum for a heartbeat round sent after the read arrived, and releases the read at that index;
/// the host serves it once its state machine has applied the index. A new leader first commits
/// an entry of its own term (it cannot know the commit index before), so reads wait for that.
///
/// Lease (thesis 6.4.1): with check-quorum, followers that heard from the leader refuse votes for
/// an election timeout, and they hear it only after the leader sent the heartbeat. So no other
/// leader can exist until ElectionTicks after the send time of the latest heartbeat round a quorum
/// acknowledged — as measured on the followers' clocks. The leader trusts its lease for
/// ElectionTicks - LeaseDriftTicks of its own ticks after that send time.
///
/// Clock contract. The lease clock is <see cref="_ticks"/>: every <see cref="Tick"/> and every tick
/// passed to <see cref="Elapse"/>. When the host asks <see cref="LeaseReadIndex"/>, that clock must
/// include every tick of real (monotonic) time that has passed; a host that drops ticks after a
/// pause stretches the lease by the pause and serves stale reads (bug fixed in NodeHost.Loop: it
/// dropped missed ticks beyond ten, and a leader frozen for 200 ms came back with a lease that had
/// expired in real time while the others elected a new leader and committed writes; the simulator's
/// LeaseCountsDeliveredTicks mutant replays it). Followers' timers may run slow (paused or busy
/// hosts): that only makes them refuse votes for longer.
///
/// Drift bound. A round sent at the leader's tick S (at or after that tick's real time) gives a
/// lease that ends at tick S + ElectionTicks - LeaseDriftTicks: at most (ElectionTicks -
/// LeaseDriftTicks) leader tick periods after the send. A voter that acknowledged the round refuses
/// votes until its election-elapsed count reaches ElectionTicks, and its first tick may come at
/// once: so for at least (ElectionTicks - 1) of its own tick periods after it received the round.
/// The lease is therefore safe while, for any two nodes, one's tick period is at most
/// (ElectionTicks - 1) / (ElectionTicks - LeaseDriftTicks) times the other's: with the host's
/// ElectionTicks 15 and LeaseDriftTicks 2, periods within a factor 14/13 (7.6%), e.g. every clock
/// within 3.7% of nominal. LeaseDriftTicks 1 leaves no room for drift at all, and 0 is refused
/// (RaftConfig.Validate): that lease outlives the refusal even with equal clocks. The simulator runs
/// nodes with tick rates up to 3.5% off nominal.
///
/// A leader handing over leadership (TimeoutNow bypasses the followers' vote refusal) has no lease,
/// and once it sent TimeoutNow it has none for the rest of its term (see <see cref="_leaseForfeited"/>).
/// </summary>
public sealed partial class RaftNode
{
    private readonly List<(long Context, long Index, long Round)> _pendingReads = new();
    private readonly List<long> _readsAwaitingCommit = new();
    /// <summary>
    /// Reads accepted and not yet in a heartbeat round. One round at a time confirms reads: the queued ones start a round
    /// together when the host takes a Ready and no earlier round of reads is still waiting for its quorum
    /// (<see cref="ReadRoundDue"/>), as etcd's server batches its linearizable reads behind one ReadIndex. Why: a round per
    /// read sent a heartbeat to every follower per read and each follower answered each, all to confirm the same
    /// leadership; batching per loop pass alone changed nothing (about one read per pass). Measured (README, "What the
    /// issue 11 work has bought so far", stop 24): CPU per 1,000 reads at 64 clients 212 -> 163 ms over three nodes. A read
    /// waits for the round under way (one round trip; a lost heartbeat: until the next tick's round). Still linearizable:
    /// a round is sent after every read in it arrived, and its index (the commit index when it starts) is at least the
    /// commit index at each read's arrival.
    /// </summary>
    private readonly List<long> _readsToStart = new();
    private readonly Dictionary<long, long> _roundSentAtTick = new();
    private List<ReadState> _readStates = new();
    private long _round;
    /// <summary>Logical time since this core was created: delivered ticks plus elapsed ones (<see cref="Elapse"/>). The lease clock.</summary>
    private long _ticks;
    private long _leaseStartTick = long.MinValue;
    /// <summary>
    /// Set once this leader sent TimeoutNow in its term. The target's election bypasses the voters'
    /// refusal (it carries <see cref="CampaignTransferContext"/>), so from then on a heartbeat
    /// acknowledgment no longer keeps another leader out, and the lease cannot be trusted again in
    /// this term, even after the transfer is aborted: the TimeoutNow may be delayed, or may already
    /// have made a new leader we have not heard of. (Bug fixed: an aborted transfer gave the lease
    /// back, renewed by rounds acknowledged during the transfer, and a deposed leader served a stale
    /// lease read; found by the simulator.) Cleared on every role change.
    /// </summary>
    private bool _leaseForfeited;

    /// <summary>
    /// Requests a linearizable read tagged <paramref name="context"/> (unique per request). When
    /// confirmed, a <see cref="ReadState"/> with that context appears in a later Ready. Returns
    /// false when this node is not the leader (route the read to the leader). If leadership is lost
    /// before confirmation the request is dropped: the host fails it on the role change.
    /// </summary>
    public bool ReadIndex(long context)
    {
        if (Role != RaftRole.Leader) return false;
        NoteActivity();
        if (_log.Term(_log.Committed) != Term)
        {
            _readsAwaitingCommit.Add(context);
            return true;
        }
        _readsToStart.Add(context);
        return true;
    }

    /// <summary>Queued reads can start their round: there are some, and no earlier round of reads awaits its quorum.</summary>
    private bool ReadRoundDue => _readsToStart.Count > 0 && _pendingReads.Count == 0;

    /// <summary>Starts one heartbeat round for the queued reads (<see cref="_readsToStart"/>) when <see cref="ReadRoundDue"/>.</summary>
    private void StartQueuedReads()
    {
        if (!ReadRoundDue) return;
        StartReadRound(_readsToStart); // copies the contexts into _pendingReads (or _readStates)
        _readsToStart.Clear();
    }

    /// <summary>
    /// The index a lease read may be served at, or -1 when this node holds no valid lease
    /// (not leader, transferring, lease expired, check-quorum off, or its term's first entry not yet committed).
    /// </summary>
    public long LeaseReadIndex()
    {
        if (Role == RaftRole.Leader) NoteActivity(); // a group serving reads stays awake, so its lease keeps being renewed
        return LeaseIndexNow();
    }

    /// <summary>
    /// What <see cref="LeaseReadIndex"/> would answer now, without counting as a read (a quiesced group stays quiesced):
    /// for checks that watch the lease, as the simulator's.
    /// </summary>
    internal long LeaseIndexNow()
    {
        if (Role != RaftRole.Leader || LeadTransferee != 0 || _leaseForfeited || !_cfg.CheckQuorum) return -1;
        if (_log.Term(_log.Committed) != Term) return -1;
        if (_voters.Count == 1 && _voters.Contains(Id)) return _log.Committed;
        // Simulator mutant only: a quiesced leader trusting its lease for as long as it stays quiesced (RaftNode.Quiesce.cs).
        if (Quiesced && (_cfg.Mutation & RaftMutation.QuiescedLeaseHeld) != 0) return _log.Committed;
        return _ticks < _leaseStartTick + _cfg.ElectionTicks - _cfg.LeaseDriftTicks ? _log.Committed : -1;
    }

    private long NewReadRound()
    {
        _round++;
        _roundSentAtTick[_round] = _ticks;
        return _round;
    }

    private void StartReadRound(IReadOnlyList<long> contexts)
    {
        if (_voters.Count == 1 && _voters.Contains(Id))
        {
            foreach (long c in contexts) _readStates.Add(new ReadState(c, _log.Committed));
            return;
        }
        long round = NewReadRound();
        foreach (long c in contexts) _pendingReads.Add((c, _log.Committed, round));
        BroadcastHeartbeat(round);
    }

    private void OnCommitAdvancedInTerm()
    {
        if (_readsAwaitingCommit.Count == 0) return;
        var contexts = _readsAwaitingCommit.ToArray();
        _readsAwaitingCommit.Clear();
        StartReadRound(contexts);
    }

    /// <summary>Releases reads whose heartbeat round a quorum acknowledged, and extends the lease.</summary>
    private void AdvanceReads()
    {
        long quorumRound = _voters
            .Select(v => v == Id ? _round : (_progress.TryGetValue(v, out var p) ? p.AckedRound : 0))
            .OrderByDescending(r => r)
            .ElementAt(Quorum - 1);
        if (quorumRound == 0) return;
        if (_roundSentAtTick.TryGetValue(quorumRound, out long sentAt) && sentAt > _leaseStartTick) _leaseStartTick = sentAt;
        foreach (long r in _roundSentAtTick.Keys.Where(r => r < quorumRound).ToList()) _roundSentAtTick.Remove(r);

        int released = 0;
        while (released < _pendingReads.Count && _pendingReads[released].Round <= quorumRound)
        {
            var (ctx, index, _) = _pendingReads[released];
            _readStates.Add(new ReadState(ctx, index));
            released++;
        }
        _pendingReads.RemoveRange(0, released);
    }

    private void ResetReads()
    {
        _pendingReads.Clear();
        _readsAwaitingCommit.Clear();
        _readsToStart.Clear();
        _roundSentAtTick.Clear();
        _leaseStartTick = long.MinValue;
        _leaseForfeited = false;
        foreach (var pr in _progress.Values) pr.AckedRound = 0;
        // _round keeps growing across terms so a stale acknowledgment can never match a new round.
    }
}
