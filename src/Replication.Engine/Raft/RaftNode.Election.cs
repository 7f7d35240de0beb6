namespace Replication.Engine.Raft;

/// <summary>Terms, elections, pre-vote and check-quorum (paper 5.2; thesis 9.6, 6.2).</summary>
public sealed partial class RaftNode
{
    private readonly Dictionary<int, bool> _votes = new();

    private void TickElection()
    {
        _electionElapsed++;
        if (IsPromotable && !Suspended && _electionElapsed >= _randomizedElectionTimeout)
        {
            _electionElapsed = 0;
            Campaign(_cfg.PreVote ? CampaignKind.PreElection : CampaignKind.Election,
                Leader != 0 ? $"leader {Leader} lost: election timeout" : "election timeout with no leader known");
        }
    }

    private void TickLeader()
    {
        _heartbeatElapsed++;
        _electionElapsed++;
        if (_idleTicks < int.MaxValue) _idleTicks++;
        if (_electionElapsed >= _cfg.ElectionTicks)
        {
            _electionElapsed = 0;
            if (_cfg.CheckQuorum)
            {
                // Thesis 6.2: a leader that cannot hear from a quorum for an election timeout steps down,
                // so clients stop waiting on it and its lease (RaftNode.Read.cs) can be trusted.
                if (!QuorumActive())
                {
                    BecomeFollower(Term, 0, "check-quorum: no quorum heard within an election timeout");
                    return;
                }
                foreach (var (id, pr) in _progress) pr.RecentActive = id == Id;
            }
            if (LeadTransferee != 0) LeadTransferee = 0; // transfer did not finish within an election timeout: abort
        }
        if (_heartbeatElapsed >= _cfg.HeartbeatTicks)
        {
            _heartbeatElapsed = 0;
            if (Quiesced) return; // RaftNode.Quiesce.cs: node liveness stands in for heartbeats
            if (ShouldQuiesce()) Quiesce();
            else BroadcastHeartbeat(NewReadRound());
        }
    }

    private bool QuorumActive() =>
        _voters.Count(v => v == Id || (_progress.TryGetValue(v, out var pr) && pr.RecentActive)) >= Quorum;

    /// <summary>How a campaign starts: a pre-vote trial, a real election, or a real election the leader asked for.</summary>
    private enum CampaignKind { PreElection, Election, Transfer }

    /// <summary>
    /// Starts an election: a pre-vote first when enabled (thesis 9.6), unless the leader asked us to
    /// take over (TimeoutNow), in which case a real election with the transfer context.
    /// </summary>
    private void Campaign(CampaignKind kind, string reason)
    {
        if (!IsPromotable) return;
        // The real election that follows a won pre-vote keeps what started the campaign (an operator wants both).
        CampaignReason = kind == CampaignKind.Election && Role == RaftRole.PreCandidate ? $"{CampaignReason}, then {reason}" : reason;
        bool pre = kind == CampaignKind.PreElection;
        bool transfer = kind == CampaignKind.Transfer;
        long voteTerm;
        if (pre)
        {
            BecomePreCandidate(reason);
            voteTerm = Term + 1;
        }
        else
        {
            BecomeCandidate(reason);
            voteTerm = Term;
        }
        if (RecordVote(Id, granted: true) == VoteResult.Won)
        {
            // Single-voter group: we already have a quorum.
            if (pre) Campaign(CampaignKind.Election, "pre-vote won");
            else BecomeLeaderAndAnnounce();
            return;
        }
        foreach (int v in _voters)
        {
            if (v == Id) continue;
            Send(new RaftMessage
            {
                To = v,
                Type = pre ? MessageType.PreVote : MessageType.Vote,
                Term = voteTerm,
                Index = _log.LastIndex,
                LogTerm = _log.LastTerm,
                Context = transfer ? CampaignTransferContext : 0,
            });
        }
    }

    /// <summary>
    /// RequestVote receiver (paper 5.2, 5.4.1): grant at most one vote per term, and only to a
    /// candidate whose log is at least as up-to-date as ours. A pre-vote is granted on the same log
    /// test when the asked-about term is higher, without recording anything.
    /// The vote is persisted (HardState in the Ready) before the response leaves.
    /// A replica that knows no configuration at all (a joining one, created empty, that has heard from no leader yet)
    /// grants nothing: its empty log is "at least as up to date" as any candidate's, so a member that missed the
    /// changes since this replica's node last held the group, and still counts the node's id as a voter, could win
    /// with its vote and a log that lacks committed entries (found by the simulator's ring mode: a node took a shard
    /// back under the id of its dropped replica; the host no longer reuses ids, Transport/ReplicaIds.cs, and this rule
    /// stays as a second line). Such a replica never needs to vote: it joins as a learner and is
    /// promoted only once caught up, with a configuration learned from the leader. Founding replicas start with one.
    /// </summary>
    private void HandleVoteRequest(RaftMessage m)
    {
        bool knowsNoConfiguration = _voters.Count == 0 && _learners.Count == 0 && (_cfg.Mutation & RaftMutation.EmptyReplicaVotes) == 0;
        bool canVote = !knowsNoConfiguration && (Vote == m.From
            || (Vote == 0 && Leader == 0)
            || (m.Type == MessageType.PreVote && m.Term > Term));
        var responseType = m.Type == MessageType.Vote ? MessageType.VoteResponse : MessageType.PreVoteResponse;
        if (canVote && _log.IsUpToDate(m.Index, m.LogTerm))
        {
            Send(new RaftMessage { To = m.From, Type = responseType, Term = m.Term });
            if (m.Type == MessageType.Vote)
            {
                _electionElapsed = 0;
                Vote = m.From;
            }
        }
        else
        {
            Send(new RaftMessage { To = m.From, Type = responseType, Term = Term, Reject = true });
        }
    }

    private void StepCandidate(RaftMessage m)
    {
        var myResponseType = Role == RaftRole.PreCandidate ? MessageType.PreVoteResponse : MessageType.VoteResponse;
        switch (m.Type)
        {
            case MessageType.Append:
                BecomeFollower(m.Term, m.From, $"append from leader {m.From}");
                HandleAppend(m);
                break;
            case MessageType.Heartbeat:
                BecomeFollower(m.Term, m.From, $"heartbeat from leader {m.From}");
                HandleHeartbeat(m);
                break;
            case MessageType.Quiesce:
                BecomeFollower(m.Term, m.From, $"quiesce from leader {m.From}");
                HandleQuiesce(m);
                break;
            case MessageType.Snapshot:
                BecomeFollower(m.Term, m.From, $"snapshot from leader {m.From}");
                HandleSnapshot(m);
                break;
            case var t when t == myResponseType:
                switch (RecordVote(m.From, !m.Reject))
                {
                    case VoteResult.Won:
                        if (Role == RaftRole.PreCandidate) Campaign(CampaignKind.Election, "pre-vote won");
                        else BecomeLeaderAndAnnounce();
                        break;
                    case VoteResult.Lost:
                        BecomeFollower(Term, 0, "election lost");
                        break;
                }
                break;
        }
    }

    private enum VoteResult { Pending, Won, Lost }

    private VoteResult RecordVote(int from, bool granted)
    {
        if (!_voters.Contains(from)) return VoteResult.Pending;
        _votes.TryAdd(from, granted);
        int yes = _votes.Count(v => v.Value);
        int no = _votes.Count - yes;
        if (yes >= Quorum) return VoteResult.Won;
        if (no > _voters.Count - Quorum) return VoteResult.Lost;
        return VoteResult.Pending;
    }

    /// <summary>Resets per-term state. The vote is kept only when the term does not change.</summary>
    private void Reset(long term)
    {
        if (term != Term)
        {
            Term = term;
            Vote = 0;
        }
        Leader = 0;
        _electionElapsed = 0;
        _heartbeatElapsed = 0;
        _idleTicks = 0;
        Quiesced = false;
        ResetRandomizedElectionTimeout();
        LeadTransferee = 0;
        _votes.Clear();
        ResetProgress();
        ResetReads();
    }

    private void BecomeFollower(long term, int leader, string reason)
    {
        Reset(term);
        Leader = leader;
        SetRole(RaftRole.Follower, reason);
    }

    private void BecomePreCandidate(string reason)
    {
        // No term change and no vote: the pre-vote only asks whether we could win (thesis 9.6).
        _votes.Clear();
        Leader = 0;
        Quiesced = false;
        SetRole(RaftRole.PreCandidate, reason);
    }

    private void BecomeCandidate(string reason)
    {
        Reset(Term + 1);
        Vote = Id;
        SetRole(RaftRole.Candidate, reason);
    }

    private void BecomeLeaderAndAnnounce()
    {
        Reset(Term);
        Leader = Id;
        SetRole(RaftRole.Leader, $"won election for term {Term}");
        // Thesis 6.4 / paper 5.4.2: a leader commits an entry of its own term before it can know
        // what is committed, so it appends an empty one right away.
        _log.Append(new[] { new LogEntry(_log.LastIndex + 1, Term, EntryType.Normal, Array.Empty<byte>()) });
        BroadcastAppend();
    }

    private void SetRole(RaftRole role, string reason)
    {
        Role = role;
        LastStateChangeReason = reason;
    }
}
