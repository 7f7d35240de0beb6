namespace Replication.Engine.Raft;

/// <summary>Log replication, commitment, flow control and leader transfer (paper 5.3, 5.4; thesis 3.10).</summary>
public sealed partial class RaftNode
{
    /// <summary>
    /// Appends <paramref name="commands"/> as consecutive entries of the current term (one batch:
    /// one append message per follower, one durable write on the host). Returns the index of the
    /// first entry, or 0 when this node cannot accept proposals (not leader, or handing leadership
    /// over). Acceptance is not commitment: the entry commits only once a quorum stores it, and may
    /// still be overwritten if this node loses leadership first; the host learns which by comparing
    /// the term of the entry applied at that index.
    /// </summary>
    public long Propose(IReadOnlyList<byte[]> commands)
    {
        if (Role != RaftRole.Leader || LeadTransferee != 0 || commands.Count == 0) return 0;
        NoteActivity(); // RaftNode.Quiesce.cs: the appends below wake the followers
        long first = _log.LastIndex + 1;
        var entries = new LogEntry[commands.Count];
        for (int i = 0; i < commands.Count; i++) entries[i] = new LogEntry(first + i, Term, EntryType.Normal, commands[i]);
        _log.Append(entries);
        foreach (int peer in _progress.Keys)
            if (peer != Id) SendAppend(peer, sendIfEmpty: false);
        return first;
    }

    /// <summary>
    /// Leader transfer (thesis 3.10): stop accepting proposals, bring <paramref name="target"/> up
    /// to date, then tell it to start an election at once (TimeoutNow). Aborted if it does not
    /// complete within an election timeout, or when a membership change removes the target or makes
    /// it a non-voter. Returns false when not leader or the target is not a voter (a learner, say).
    /// When every entry has been sent to the target but not all are acknowledged yet, a TimeoutNow
    /// naming the last entry follows the appends at once, instead of one round trip and one fsync
    /// on the target later: the target campaigns only if its log holds that entry (it arrived
    /// before the TimeoutNow, as the transport keeps a peer's frames in order), and otherwise waits
    /// for the TimeoutNow sent when its acknowledgment shows it caught up. Safety does not rest on
    /// this: voters still grant votes only to a log as up to date as theirs.
    /// </summary>
    public bool TransferLeadership(int target)
    {
        if (Role != RaftRole.Leader || !_voters.Contains(target)) return false;
        if (target == Id) return true;
        if (LeadTransferee == target) return true;
        NoteActivity();
        LeadTransferee = target;
        _electionElapsed = 0;
        var pr = _progress[target];
        if (pr.Match == _log.LastIndex)
        {
            Send(new RaftMessage { To = target, Type = MessageType.TimeoutNow });
            return true;
        }
        SendAppend(target, sendIfEmpty: true);
        while (SendAppend(target, sendIfEmpty: false)) { }
        if (pr.State == ProgressState.Replicate && pr.Next > _log.LastIndex)
            Send(new RaftMessage { To = target, Type = MessageType.TimeoutNow, Index = _log.LastIndex, LogTerm = _log.LastTerm });
        return true;
    }

    private void StepFollower(RaftMessage m)
    {
        switch (m.Type)
        {
            case MessageType.Append:
                _electionElapsed = 0;
                Leader = m.From;
                Quiesced = false;
                HandleAppend(m);
                break;
            case MessageType.Heartbeat:
                _electionElapsed = 0;
                Leader = m.From;
                Quiesced = false;
                HandleHeartbeat(m);
                break;
            case MessageType.Quiesce:
                _electionElapsed = 0;
                Leader = m.From;
                HandleQuiesce(m);
                break;
            case MessageType.Snapshot:
                _electionElapsed = 0;
                Leader = m.From;
                Quiesced = false;
                HandleSnapshot(m);
                break;
            case MessageType.TimeoutNow:
                // One sent behind the last appends names the leader's last entry: without it here (an append was lost),
                // campaigning could only fail; the leader sends another once this log has caught up.
                if (m.Index > 0 && !_log.MatchTerm(m.Index, m.LogTerm)) break;
                if (!Suspended) Campaign(CampaignKind.Transfer, $"leadership transferred by {m.From}");
                break;
        }
    }

    /// <summary>
    /// AppendEntries receiver (paper 5.3). Accept when our log holds (Index, LogTerm): append,
    /// truncating any conflicting suffix, and advance commit to what the leader says is committed,
    /// bounded by what this message proves we match. Otherwise reject with a hint for fast
    /// backtracking: the last index at or below the probe whose term is not above the leader's
    /// LogTerm, so the leader can skip a whole conflicting term at once.
    /// </summary>
    private void HandleAppend(RaftMessage m)
    {
        MaybeAdoptBootstrapMembership(m);
        if (m.Index < _log.Committed)
        {
            // Everything up to our commit index is known to match; tell the leader where we are.
            Send(new RaftMessage { To = m.From, Type = MessageType.AppendResponse, Index = _log.Committed });
            return;
        }
        if (_log.MatchTerm(m.Index, m.LogTerm))
        {
            long lastNew = _log.MaybeAppend(m.Index, m.Entries);
            SyncConfigAfterAppend(m.Entries);
            _log.CommitTo(Math.Min(m.Commit, lastNew));
            Send(new RaftMessage { To = m.From, Type = MessageType.AppendResponse, Index = lastNew });
            return;
        }
        long hint = _log.FindConflictByTerm(Math.Min(m.Index, _log.LastIndex), m.LogTerm);
        Send(new RaftMessage
        {
            To = m.From,
            Type = MessageType.AppendResponse,
            Index = m.Index,
            Reject = true,
            RejectHint = hint,
            LogTerm = _log.Term(hint),
        });
    }

    private void HandleHeartbeat(RaftMessage m)
    {
        // The leader sends min(match, commit), so this never commits an entry we might not share with it.
        _log.CommitTo(Math.Min(m.Commit, _log.LastIndex));
        // Index: our last index, so a leader can notice that we hold less than we once acknowledged.
        Send(new RaftMessage { To = m.From, Type = MessageType.HeartbeatResponse, Context = m.Context, Index = _log.LastIndex });
    }

    private void StepLeader(RaftMessage m)
    {
        if (!_progress.TryGetValue(m.From, out var pr)) return;
        switch (m.Type)
        {
            case MessageType.AppendResponse:
                pr.RecentActive = true;
                pr.Applied = Math.Max(pr.Applied, m.Commit);
                if (m.Reject)
                {
                    long next = m.RejectHint;
                    if (m.LogTerm > 0) next = _log.FindConflictByTerm(m.RejectHint, m.LogTerm);
                    if (pr.MaybeDecrTo(m.Index, next))
                    {
                        if (pr.State == ProgressState.Replicate) pr.BecomeProbe();
                        SendAppend(m.From, sendIfEmpty: true);
                    }
                    return;
                }
                bool wasPaused = pr.IsPaused;
                if (pr.MaybeUpdate(m.Index))
                {
                    switch (pr.State)
                    {
                        case ProgressState.Probe:
                            pr.BecomeReplicate();
                            break;
                        case ProgressState.Snapshot when pr.Match >= _log.SnapshotIndex:
                            // The follower has the snapshot (its answer may beat the host's ReportSnapshot)
                            // and everything after it is still in our log.
                            pr.BecomeReplicate();
                            break;
                        case ProgressState.Replicate:
                            pr.Inflights.FreeLE(m.Index);
                            break;
                    }
                    if (MaybeCommit()) BroadcastAppend();
                    else if (wasPaused) SendAppend(m.From, sendIfEmpty: true);
                    if (Role != RaftRole.Leader) return; // stepped down (removed from the configuration)
                    // Keep the pipeline full while there is more to send and window left.
                    while (SendAppend(m.From, sendIfEmpty: false)) { }
                    if (m.From == LeadTransferee && pr.Match == _log.LastIndex)
                        Send(new RaftMessage { To = m.From, Type = MessageType.TimeoutNow });
                }
                break;

            case MessageType.HeartbeatResponse:
                pr.RecentActive = true;
                pr.Applied = Math.Max(pr.Applied, m.Commit);
                pr.ProbeSent = false;
                // A lost append can leave a full window with nothing coming back: free one slot so
                // the next append (which the follower will reject if it has a gap) can be sent.
                if (pr.State == ProgressState.Replicate && pr.Inflights.Full) pr.Inflights.FreeFirstOne();
                if (m.Context > pr.AckedRound) pr.AckedRound = m.Context;
                if (m.Index < pr.Match)
                {
                    // The follower holds less than it acknowledged: its files were rolled back (a node
                    // restored from a backup, a lost disk). Raft assumes this never happens, and without
                    // this the leader would treat its rejections as stale forever and it would never
                    // catch up. Forget the match and probe from what it has. A delayed, older heartbeat
                    // answer can trigger this too; that costs one probe round trip, never safety: the
                    // commit index never moves back, and matches only make future commits wait.
                    pr.Regress(m.Index);
                }
                AdvanceReads();
                if (pr.Match < _log.LastIndex) SendAppend(m.From, sendIfEmpty: true);
                break;
        }
    }

    /// <summary>
    /// Sends the next Append to <paramref name="to"/> if its flow control allows. Returns whether a
    /// message was sent. Empty appends (carrying only the commit index, or probing) are sent only
    /// when <paramref name="sendIfEmpty"/>.
    /// </summary>
    private bool SendAppend(int to, bool sendIfEmpty)
    {
        if (Role != RaftRole.Leader || !_progress.TryGetValue(to, out var pr) || pr.IsPaused) return false;
        long prev = pr.Next - 1;
        if (prev < _log.SnapshotIndex)
        {
            // The entries the follower needs were compacted away (paper 7): send the snapshot instead.
            SendSnapshot(to, pr);
            return true;
        }
        var entries = pr.Next <= _log.LastIndex
            ? _log.Slice(pr.Next, _log.LastIndex, _cfg.MaxSizePerMessage)
            : Array.Empty<LogEntry>();
        if (entries.Count == 0 && !sendIfEmpty) return false;
        Send(new RaftMessage
        {
            To = to,
            Type = MessageType.Append,
            Index = prev,
            LogTerm = _log.Term(prev),
            Entries = entries,
            Commit = _log.Committed,
            // From index 0, the follower may be a joining node that must learn the bootstrap membership.
            Voters = prev == 0 ? _baseConfig.Voters : Array.Empty<int>(),
            Learners = prev == 0 ? _baseConfig.Learners : Array.Empty<int>(),
        });
        if (pr.State == ProgressState.Replicate && entries.Count > 0)
        {
            long bytes = 0;
            foreach (var e in entries) bytes += e.Size;
            pr.SentEntries(entries[^1].Index, bytes);
        }
        else if (pr.State == ProgressState.Probe) pr.ProbeSent = true;
        return true;
    }

    private void BroadcastAppend()
    {
        foreach (int peer in _progress.Keys)
            if (peer != Id) SendAppend(peer, sendIfEmpty: true);
    }

    private void BroadcastHeartbeat(long round)
    {
        foreach (var (peer, pr) in _progress)
        {
            if (peer == Id) continue;
            Send(new RaftMessage
            {
                To = peer,
                Type = MessageType.Heartbeat,
                Commit = Math.Min(pr.Match, _log.Committed),
                Context = round,
            });
        }
    }

    /// <summary>
    /// Advances the commit index to the highest index stored on a quorum of voters, but only if
    /// that entry is from the current term (paper 5.4.2, Figure 8: counting replicas of an older
    /// term's entry is unsafe; such entries commit indirectly). Returns whether commit advanced.
    /// </summary>
    private bool MaybeCommit()
    {
        if (_voters.Count == 0) return false;
        var matches = _voters.Select(v => _progress.TryGetValue(v, out var p) ? p.Match : 0).OrderByDescending(x => x).ToList();
        long quorumIndex = matches[Quorum - 1];
        bool oldTermCounts = (_cfg.Mutation & RaftMutation.CommitOldTermByCounting) != 0; // simulator mutant only
        if (quorumIndex <= _log.Committed || (_log.Term(quorumIndex) != Term && !oldTermCounts)) return false;
        _log.CommitTo(quorumIndex);
        OnCommitAdvancedInTerm();
        if (MaybeStepDownAfterRemoval()) return false;
        return true;
    }
}
