namespace Replication.Engine.Raft;

/// <summary>
/// Learners and membership change by single-server steps (thesis 4.1–4.4).
///
/// WHEN A CONFIGURATION TAKES EFFECT: on append, as in the thesis (4.1). Every node uses the
/// latest configuration in its log, committed or not, from the moment the ConfChange entry is
/// appended (leader: on proposal; follower: on accepting the append). Consequence: a follower
/// whose uncommitted ConfChange entry is truncated by a new leader (paper 5.3) falls back to the
/// previous configuration. The core keeps the configuration base (the membership at the snapshot
/// index, or the bootstrap membership) plus one (index, term, configuration) record per
/// ConfChange entry in the log, drops the records of truncated entries and so reverts exactly.
///
/// SAFETY ARGUMENT. Election Safety needs any two quorums that can act in the same term to
/// intersect. Each change adds or removes at most one voter (AddVoter, RemoveNode of a voter,
/// PromoteLearner) or changes no voter at all (AddLearner, RemoveNode of a learner), so for two
/// consecutive configurations C and C' a majority of C and a majority of C' always share a
/// server (thesis 4.1: |C| = n, |C'| = n + 1 gives majorities of n/2+1 and (n+1)/2+1 which sum
/// past n + 1). Two quorums of the group can then only be disjoint if the configurations in use
/// are two or more steps apart, which the following rules prevent:
/// <list type="number">
/// <item>One change at a time: the leader refuses a change while the latest ConfChange in its log
/// is uncommitted (<see cref="IsConfChangePending"/>). Once C' is committed, a majority of C
/// stores it, so no server that still uses C can win an election (paper 5.4.1: the voters that
/// hold C' reject a candidate whose log lacks it), and C is dead.</item>
/// <item>A leader proposes a change only after it committed an entry of its own term (its no-op).
/// This is the correction Ongaro posted to raft-dev (2015) for the thesis algorithm: without it,
/// a leader of term t2 working in C could append C2 while an uncommitted C1 (also one step from C)
/// from a deposed leader of term t1 &lt; t2 survives elsewhere; C1 and C2 are two steps apart and
/// could both gather disjoint majorities. Committing in t2 first means a majority of C holds a
/// t2 entry, so C1's term-t1 log can no longer win an election, and C1 can never commit.</item>
/// <item>Truncation reverts: a node that loses an uncommitted C' (rule above) goes back to C, the
/// configuration the new leader's log agrees with.</item>
/// </list>
/// Learners are outside every quorum (election, commit, ReadIndex, lease, check-quorum), so
/// adding, catching up and removing them never touches safety; promotion is an ordinary one-voter
/// addition, refused until the learner has caught up to the commit index (thesis 4.2.1: a voter
/// that lags costs availability, not safety).
///
/// REMOVING THE LEADER (thesis 4.2.2): once it appends its own removal, the leader no longer counts
/// itself in any quorum (it is not in <see cref="Voters"/>), but keeps replicating until the change
/// commits; then it steps down, hands leadership to an up-to-date voter with TimeoutNow when it
/// has one, and, no longer a voter, never campaigns again. A removed node that never learns of its
/// removal may time out and pre-vote; check-quorum makes live members ignore it (thesis 4.2.3).
///
/// JOINING NODES: a node created with no membership at all (empty <see cref="RaftConfig.Voters"/>
/// and <see cref="RaftConfig.Learners"/>) never campaigns, accepts appends and snapshots from the
/// leader, and learns the membership from them: from a Snapshot message's metadata, or, when the
/// leader still has its whole log, from the bootstrap membership the leader attaches to an Append
/// starting at index 0. In the latter case the Ready carries a <see cref="SnapshotMetadata"/> at
/// index 0 so the host records that membership durably (the node would otherwise rebuild its
/// membership from an empty base after a restart).
/// </summary>
public sealed partial class RaftNode
{
    private Membership _baseConfig = Membership.Empty;
    private Membership _config = Membership.Empty;
    private readonly List<(long Index, long Term, Membership Config)> _confHistory = new();

    /// <summary>True while the latest ConfChange entry in the log is not committed (the leader then refuses another).</summary>
    public bool IsConfChangePending => _confHistory.Count > 0 && _confHistory[^1].Index > _log.Committed;

    /// <summary>Why the last <see cref="ProposeConfChange"/> returned 0 (for operators); null after an accepted one.</summary>
    public string? LastConfChangeRefusal { get; private set; }

    /// <summary>
    /// Proposes one membership change (leader only). It takes effect as soon as it is appended
    /// (see the summary of this file). Returns the entry's index, or 0 when refused: not leader,
    /// leadership transfer in progress, no entry of this term committed yet, an earlier change still
    /// uncommitted, a change that makes no sense in the current configuration (adding a member,
    /// removing a non-member, removing the last voter, promoting a non-learner), or promoting a
    /// learner that has not caught up to the commit index. The reason is in <see cref="LastConfChangeRefusal"/>.
    /// </summary>
    public long ProposeConfChange(ConfChange change)
    {
        LastConfChangeRefusal = ConfChangeRefusal(change);
        if (LastConfChangeRefusal is not null) return 0;
        NoteActivity();
        long index = _log.LastIndex + 1;
        _log.Append(new[] { new LogEntry(index, Term, EntryType.ConfChange, change.Encode()) });
        _confHistory.Add((index, Term, _config.Apply(change)));
        SetCurrentConfig();
        foreach (int peer in _progress.Keys.ToList())
            if (peer != Id) SendAppend(peer, sendIfEmpty: false);
        // Removing a lagging voter can complete a quorum for entries already in the log.
        if (MaybeCommit()) BroadcastAppend();
        return index;
    }

    private string? ConfChangeRefusal(ConfChange change)
    {
        if (Role != RaftRole.Leader) return "not the leader";
        if (LeadTransferee != 0) return $"leadership transfer to {LeadTransferee} in progress";
        if (_log.Term(_log.Committed) != Term) return "no entry of the current term committed yet";
        bool oneAtATime = (_cfg.Mutation & RaftMutation.ConcurrentConfChange) == 0; // simulator mutant only
        if (IsConfChangePending && oneAtATime) return $"the change at index {_confHistory[^1].Index} is not committed yet";
        if (_config.Refusal(change) is { } why) return why;
        if (change.Type == ConfChangeType.PromoteLearner
            && _progress.TryGetValue(change.NodeId, out var pr) && pr.Match < _log.Committed)
            return $"learner {change.NodeId} has not caught up (match {pr.Match}, commit {_log.Committed})";
        return null;
    }

    /// <summary>The configuration in force at <paramref name="index"/> (at or after the snapshot index).</summary>
    private Membership MembershipAt(long index)
    {
        for (int i = _confHistory.Count - 1; i >= 0; i--)
            if (_confHistory[i].Index <= index) return _confHistory[i].Config;
        return _baseConfig;
    }

    /// <summary>Re-derives the configuration records from the base and every ConfChange entry in the log.</summary>
    private void RebuildConfigHistory()
    {
        _confHistory.Clear();
        var config = _baseConfig;
        foreach (var e in _log.Slice(_log.FirstIndex, _log.LastIndex, int.MaxValue))
        {
            if (e.Type != EntryType.ConfChange) continue;
            config = ApplyEntry(config, e);
            _confHistory.Add((e.Index, e.Term, config));
        }
    }

    /// <summary>
    /// After a follower append: forgets the configurations of truncated entries (so an uncommitted
    /// change that was overwritten reverts) and adds those of newly appended ConfChange entries.
    /// </summary>
    private void SyncConfigAfterAppend(IReadOnlyList<LogEntry> appended)
    {
        bool changed = false;
        while (_confHistory.Count > 0 && _log.Term(_confHistory[^1].Index) != _confHistory[^1].Term)
        {
            _confHistory.RemoveAt(_confHistory.Count - 1);
            changed = true;
        }
        foreach (var e in appended)
        {
            if (e.Type != EntryType.ConfChange || e.Index <= _log.SnapshotIndex) continue;
            if (_confHistory.Count > 0 && _confHistory[^1].Index >= e.Index) continue; // already recorded
            var config = ApplyEntry(_confHistory.Count > 0 ? _confHistory[^1].Config : _baseConfig, e);
            _confHistory.Add((e.Index, e.Term, config));
            changed = true;
        }
        if (changed) SetCurrentConfig();
    }

    /// <summary>
    /// A ConfChange entry that does not decode (never written by this core) is a no-op on every
    /// replica alike, so all replicas still derive the same configuration from the same log.
    /// </summary>
    private static Membership ApplyEntry(Membership config, LogEntry e) =>
        ConfChange.TryDecode(e.Data, out var cc) ? config.Apply(cc) : config;

    /// <summary>Makes the latest configuration the one in force, and (leader) tracks exactly its members.</summary>
    private void SetCurrentConfig()
    {
        _config = _confHistory.Count > 0 ? _confHistory[^1].Config : _baseConfig;
        _voters.Clear();
        _voters.UnionWith(_config.Voters);
        _learners.Clear();
        _learners.UnionWith(_config.Learners);
        if (Role != RaftRole.Leader) return;
        foreach (int v in _config.Voters)
        {
            if (_progress.TryGetValue(v, out var pr)) pr.IsLearner = false;
            else _progress[v] = NewProgress(isLearner: false);
        }
        foreach (int l in _config.Learners)
        {
            if (_progress.TryGetValue(l, out var pr)) pr.IsLearner = true;
            else _progress[l] = NewProgress(isLearner: true);
        }
        foreach (int gone in _progress.Keys.Where(id => id != Id && !_config.IsMember(id)).ToList())
            _progress.Remove(gone);
        if (LeadTransferee != 0 && !_voters.Contains(LeadTransferee)) LeadTransferee = 0; // target removed or demoted: abort
    }

    /// <summary>
    /// A joining node (no membership at all, whole log from index 0) learns the group's bootstrap
    /// membership from the leader's first append, and asks the host to record it (Ready.Snapshot at index 0).
    /// </summary>
    private void MaybeAdoptBootstrapMembership(RaftMessage m)
    {
        if (m.Index != 0 || _log.SnapshotIndex != 0 || !_baseConfig.IsEmpty) return;
        if (m.Voters.Count == 0 && m.Learners.Count == 0) return;
        _baseConfig = Membership.From(m.Voters, m.Learners);
        RebuildConfigHistory();
        SetCurrentConfig();
        _pendingSnapshot = _baseConfig.ToMetadata(0, 0);
    }

    /// <summary>
    /// Thesis 4.2.2: a leader that removed itself steps down once the change is committed (it kept
    /// leading, without counting itself, until then), and hands the leadership to a successor
    /// (TimeoutNow, thesis 3.10) so that the group does not wait an election timeout for a leader.
    /// Returns true when it stepped down.
    /// <para>The successor: the lowest voter that holds every entry (TimeoutNow at once); else the
    /// voter furthest along among those every entry has been sent to, with a TimeoutNow that names
    /// the last entry and follows those appends on the same connection, so it campaigns once it
    /// holds them (as <see cref="TransferLeadership"/> does). Bug fixed: only a voter that had
    /// acknowledged the last entry was handed over to, and a leader that removed itself under a
    /// stream of writes (later entries still on their way when the removal committed) left its group
    /// leaderless for an election timeout: in the ring bench a shard moved off its leader's node
    /// held a write 500 ms and failed another. Safety does not rest on the choice: a TimeoutNow only
    /// starts an election, and votes still go only to a log as up to date as the voter's.</para>
    /// </summary>
    private bool MaybeStepDownAfterRemoval()
    {
        if (Role != RaftRole.Leader || _voters.Contains(Id) || IsConfChangePending) return false;
        BroadcastAppend(); // let the remaining members learn that the change committed
        var (successor, caughtUp) = RemovalSuccessor();
        if (successor != 0)
            Send(caughtUp
                ? new RaftMessage { To = successor, Type = MessageType.TimeoutNow }
                : new RaftMessage { To = successor, Type = MessageType.TimeoutNow, Index = _log.LastIndex, LogTerm = _log.LastTerm });
        BecomeFollower(Term, 0, successor != 0
            ? $"removed from the configuration; leadership handed to {successor}"
            : "removed from the configuration");
        return true;
    }

    /// <summary>The voter a leader that removed itself hands over to (0: none; see <see cref="MaybeStepDownAfterRemoval"/>),
    /// and whether it holds every entry already.</summary>
    private (int Successor, bool CaughtUp) RemovalSuccessor()
    {
        int caughtUp = _voters.Where(v => _progress.TryGetValue(v, out var p) && p.Match == _log.LastIndex).DefaultIfEmpty(0).Min();
        if (caughtUp != 0) return (caughtUp, true);
        int sentAll = _voters
            .Where(v => _progress.TryGetValue(v, out var p) && p.State == ProgressState.Replicate && p.Next > _log.LastIndex)
            .OrderByDescending(v => _progress[v].Match).ThenBy(v => v)
            .FirstOrDefault();
        return (sentAll, false);
    }
}
