namespace Replication.Engine.Raft;

/// <summary>
/// Quiescence (CockroachDB's quiescent ranges, TiKV's hibernate regions): a group with no traffic stops heartbeating,
/// so an idle node costs nothing per group. On only with <see cref="RaftConfig.Quiesce"/>.
///
/// <para><b>When a leader quiesces.</b> At a heartbeat tick, instead of the heartbeat, once the group has been idle for
/// an election timeout (no proposal, read, membership change or transfer) and everything is settled: its first entry of
/// the term committed, its whole log committed and durable here, no read waiting, no transfer, and every other member
/// (voters and learners) acknowledged the last index, applied the commit index, and was heard within this check-quorum
/// period. It then sends each member one <see cref="MessageType.Quiesce"/> (its last index and term, and the commit
/// index) and stops heartbeating.</para>
///
/// <para><b>What replaces the heartbeats: node liveness.</b> The host sends one cheap liveness signal per peer node (not
/// per group) at a slower period, and feeds every one it receives to its cores with <see cref="HeardFrom"/>, for each
/// member the sending node hosts — a host input, like <see cref="Tick"/>. A quiesced follower counts it as contact from
/// its leader when it comes from the leader's node (its election timer restarts); a quiesced leader counts it as the
/// member being active for check-quorum. A follower whose leader's node falls silent times out and campaigns exactly as
/// it does today; a quiesced leader that hears from no quorum of nodes steps down by check-quorum as today.</para>
///
/// <para><b>What wakes a group.</b> Leader: a proposal, a membership change, a read (ReadIndex or lease), a transfer,
/// and any message from a member except a late acknowledgment that reports nothing new (a member that refused the
/// Quiesce, one that restarted and campaigns, one that lost entries). A woken leader heartbeats at once. Follower: any
/// Append, Heartbeat or Snapshot from its leader; a term change; and a vote or pre-vote request for a later term from its
/// own leader (that member is campaigning, so it no longer leads this term and never will again: the follower forgets it as leader, so it can grant the vote it
/// would otherwise refuse while its leader's node is alive — without this a leader replica that stepped down on a live
/// node would leave its group leaderless).</para>
///
/// <para><b>Safety.</b> Quiescence changes no rule that safety rests on. Liveness signals only (a) restart a quiesced
/// follower's election timer, which makes it refuse votes for longer (thesis 4.2.3) — that only strengthens the lease
/// argument below and delays elections (availability), and (b) mark members active for a quiesced leader's
/// check-quorum, which only delays a step-down (availability: the lease does not rest on the leader stepping down, it
/// rests on the voters' refusal). A follower applies the Quiesce's commit index only when its log ends at exactly the
/// leader's last index and term (Log Matching then gives it the leader's whole log), so it commits nothing it could
/// lack; otherwise it answers with a refusal that wakes the leader.</para>
///
/// <para><b>Lease reads on a quiesced leader</b> (RaftNode.Read.cs). The lease is still derived only from heartbeat
/// rounds a quorum acknowledged, each counted from its send time; a liveness signal never renews it. A quiesced leader
/// sends no rounds, so its lease simply runs out ElectionTicks - LeaseDriftTicks after the last round acknowledged before
/// it quiesced: while it lasts, the thesis 6.4.1 argument holds unchanged (every voter of that quorum refuses votes for
/// an election timeout after it received the round — and a quiesced voter refuses even longer, see (a) above — so no
/// other leader can exist). Once it has run out, <see cref="LeaseReadIndex"/> returns -1, and the host's ReadIndex round
/// wakes the group (its heartbeat both confirms leadership and renews the lease). A leader that trusted its lease for as
/// long as it stayed quiesced would be wrong: a paused or partitioned quiesced leader keeps believing while the others,
/// no longer hearing its node, elect another (the simulator's QuiescedLeaseHeld mutant).</para>
/// </summary>
public sealed partial class RaftNode
{
    /// <summary>Ticks since this leader last had work (a proposal, read, membership change or transfer).</summary>
    private int _idleTicks;

    /// <summary>
    /// True while the group is quiescent at this replica: a leader that stopped heartbeating, or a follower that took its
    /// leader's Quiesce and lets its leader's node liveness (<see cref="HeardFrom"/>) stand in for heartbeats.
    /// </summary>
    public bool Quiesced { get; private set; }

    /// <summary>
    /// Host input: a liveness signal arrived from the node hosting <paramref name="member"/> (the host calls it for every
    /// member of this group that node hosts). No effect unless quiesced (see the summary of this file).
    /// </summary>
    public void HeardFrom(int member)
    {
        if (!Quiesced || member == Id) return;
        if (Role == RaftRole.Leader)
        {
            if (_progress.TryGetValue(member, out var pr)) pr.RecentActive = true;
        }
        else if (member == Leader)
        {
            _electionElapsed = 0;
        }
    }

    /// <summary>The leader has work: it is no longer idle, and a quiesced one wakes and heartbeats at once.</summary>
    private void NoteActivity()
    {
        _idleTicks = 0;
        if (!Quiesced || Role != RaftRole.Leader) return;
        Quiesced = false;
        _heartbeatElapsed = 0;
        BroadcastHeartbeat(NewReadRound());
    }

    /// <summary>Leader, at a heartbeat tick: whether to quiesce instead of heartbeating (conditions in the summary of this file).</summary>
    private bool ShouldQuiesce()
    {
        if (!_cfg.Quiesce || _idleTicks < _cfg.ElectionTicks || LeadTransferee != 0) return false;
        if (_pendingReads.Count > 0 || _readsAwaitingCommit.Count > 0 || _readsToStart.Count > 0) return false;
        long last = _log.LastIndex;
        if (_log.Committed != last || _log.Stable != last || _log.Term(last) != Term) return false;
        foreach (var (id, pr) in _progress)
        {
            if (id == Id) continue;
            if (pr.Match != last || pr.Applied < last || !pr.RecentActive || pr.State != ProgressState.Replicate) return false;
        }
        return true;
    }

    private void Quiesce()
    {
        Quiesced = true;
        foreach (int peer in _progress.Keys)
        {
            if (peer == Id) continue;
            Send(new RaftMessage { To = peer, Type = MessageType.Quiesce, Index = _log.LastIndex, LogTerm = _log.LastTerm, Commit = _log.Committed });
        }
    }

    /// <summary>
    /// Follower: the leader quiesces. Taken only when this log ends exactly at the leader's last entry (so it holds the
    /// leader's whole log, and the commit index is safe to apply); otherwise a refusal (a HeartbeatResponse with Reject)
    /// wakes the leader, whose heartbeats and appends then bring this replica up to date.
    /// </summary>
    private void HandleQuiesce(RaftMessage m)
    {
        if (_log.LastIndex == m.Index && _log.MatchTerm(m.Index, m.LogTerm))
        {
            _log.CommitTo(m.Commit);
            Quiesced = true;
            return;
        }
        Send(new RaftMessage { To = m.From, Type = MessageType.HeartbeatResponse, Index = _log.LastIndex, Reject = true });
    }

    /// <summary>
    /// Called first in <see cref="Step"/> for a message from a member while quiesced: the leader wakes unless the message
    /// is a late acknowledgment that reports nothing new; a follower asked for its vote by its own leader forgets that
    /// leader (it is campaigning, so no longer leads) and stops standing in node liveness for it.
    /// </summary>
    private void WakeOnMessage(RaftMessage m)
    {
        if (Role == RaftRole.Leader)
        {
            if (!_progress.ContainsKey(m.From)) return;
            bool lateAck = m.Type is MessageType.AppendResponse or MessageType.HeartbeatResponse && !m.Reject && m.Index == _log.LastIndex;
            if (!lateAck && m.Type != MessageType.Quiesce) NoteActivity();
        }
        else if (m.From == Leader && m.Term > Term && m.Type is MessageType.Vote or MessageType.PreVote)
        {
            // Only a request for a later term: a leader of this term sends none, and never leads this term again once it
            // stopped (a delayed request from before it won this term has this term, and must not unseat it).
            Quiesced = false;
            Leader = 0;
        }
    }
}
