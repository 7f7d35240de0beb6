namespace Replication.Engine.Raft;

/// <summary>
/// Log compaction and InstallSnapshot (paper 7, thesis 5). The state-machine data never passes
/// through the core: the host snapshots its state machine at an applied index and calls
/// <see cref="Compact"/>; a leader whose follower needs compacted entries emits a Snapshot message
/// carrying only the metadata, the host streams the data (in chunks, out of band) and on the
/// follower side steps that message once the data is complete and verified; the follower's core
/// then restores its log and hands the metadata back in <see cref="Ready.Snapshot"/> for the host
/// to install before anything else in that Ready.
/// </summary>
public sealed partial class RaftNode
{
    private SnapshotMetadata? _pendingSnapshot;

    /// <summary>The snapshot the log starts after: its index, term and the membership at that index
    /// (index 0 and the bootstrap membership when nothing was compacted). Store it with the data.</summary>
    public SnapshotMetadata LastSnapshot => _baseConfig.ToMetadata(_log.SnapshotIndex, _log.SnapshotTerm);

    /// <summary>
    /// The metadata a snapshot of the state machine at applied index <paramref name="index"/> must
    /// carry (term and membership at that index), for a host that snapshots before it compacts.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is outside [snapshot index, applied].</exception>
    public SnapshotMetadata MetadataAt(long index)
    {
        if (index < _log.SnapshotIndex || index > _log.Applied)
            throw new ArgumentOutOfRangeException(nameof(index), $"{index} is outside [{_log.SnapshotIndex}, {_log.Applied}].");
        return MembershipAt(index).ToMetadata(index, _log.Term(index));
    }

    /// <summary>
    /// The membership in force at committed index <paramref name="index"/> (final: a committed entry's configuration
    /// never changes), for a host applying an entry that depends on it (a shard split creates a group with it).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is outside [snapshot index, committed].</exception>
    public (IReadOnlyList<int> Voters, IReadOnlyList<int> Learners) MembershipAtCommitted(long index)
    {
        if (index < _log.SnapshotIndex || index > _log.Committed)
            throw new ArgumentOutOfRangeException(nameof(index), $"{index} is outside [{_log.SnapshotIndex}, {_log.Committed}].");
        var m = MembershipAt(index).ToMetadata(index, 0);
        return (m.Voters, m.Learners);
    }

    /// <summary>
    /// The host took a state-machine snapshot at applied index <paramref name="index"/>: the core
    /// drops every entry up to it, remembering its term and the membership in force there
    /// (<see cref="LastSnapshot"/>). An index at or below the current snapshot is ignored. The host
    /// keeps that snapshot's data to stream to followers that need it, and may delete its stored
    /// entries up to the index.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is beyond <see cref="Applied"/>.</exception>
    public void Compact(long index)
    {
        if (index <= _log.SnapshotIndex) return;
        if (index > _log.Applied)
            throw new ArgumentOutOfRangeException(nameof(index), $"Cannot compact to {index}: only {_log.Applied} is applied.");
        var config = MembershipAt(index);
        _log.Compact(index);
        _baseConfig = config;
        _confHistory.RemoveAll(h => h.Index <= index);
    }

    /// <summary>
    /// The leader's host reports the outcome of the snapshot transfer to <paramref name="to"/> it
    /// started for a Snapshot message. Success: replication resumes after <paramref name="sentIndex"/>,
    /// the index of the snapshot the host actually sent, which may be later than the one the Snapshot
    /// message named (a host sends its state machine as it is when the transfer starts: NodeHost sends
    /// its applied index). Failure: the follower is probed again after the next heartbeat answer, which
    /// sends a new Snapshot message if it still needs one. Ignored unless this node leads and waits on
    /// that transfer.
    ///
    /// Why the index sent and not the one named: resuming after the named one (this node's last
    /// compaction point when the transfer began) probed entries the follower already had in the
    /// snapshot, and when the log was compacted further during the transfer (a large shard takes
    /// seconds) those entries were gone, so the follower was sent a whole second snapshot right after
    /// the first (ring bench, a restarted node: two 33 MB transfers of one shard in a row).
    /// </summary>
    public void ReportSnapshot(int to, bool succeeded, long sentIndex)
    {
        if (Role != RaftRole.Leader || !_progress.TryGetValue(to, out var pr) || pr.State != ProgressState.Snapshot) return;
        pr.SnapshotDone(succeeded, Math.Min(sentIndex, _log.LastIndex));
    }

    /// <summary>Leader: the follower needs entries before our first; pause it and ask the host to send the snapshot.</summary>
    private void SendSnapshot(int to, Progress pr)
    {
        var snap = LastSnapshot;
        pr.BecomeSnapshot(snap.Index);
        Send(new RaftMessage
        {
            To = to,
            Type = MessageType.Snapshot,
            Index = snap.Index,
            LogTerm = snap.Term,
            Commit = _log.Committed,
            Voters = snap.Voters,
            Learners = snap.Learners,
        });
    }

    /// <summary>
    /// InstallSnapshot receiver (paper 7; the data is already with the host). A snapshot not newer
    /// than our commit index tells nothing: answer with the commit index. When our log already holds
    /// its last entry (same index and term), the entries after it are still valid (log matching):
    /// just commit up to it. Otherwise discard the log and restart it after the snapshot, with the
    /// snapshot's membership; the host installs the data from the next Ready.
    /// </summary>
    /// <summary>
    /// Whether a Snapshot message at <paramref name="index"/> (<paramref name="term"/>) from the current term's leader would
    /// make this node restore its log there (<see cref="HandleSnapshot"/>), rather than answer with what it has. Lets the
    /// host store a snapshot's data before it steps the message in (NodeHost.Snapshots.cs).
    /// </summary>
    public bool WouldRestore(long index, long term) => index > _log.Committed && !_log.MatchTerm(index, term);

    private void HandleSnapshot(RaftMessage m)
    {
        if (m.Index <= _log.Committed)
        {
            Send(new RaftMessage { To = m.From, Type = MessageType.AppendResponse, Index = _log.Committed });
            return;
        }
        if (_log.MatchTerm(m.Index, m.LogTerm))
        {
            _log.CommitTo(m.Index);
            Send(new RaftMessage { To = m.From, Type = MessageType.AppendResponse, Index = m.Index });
            return;
        }
        _log.Restore(m.Index, m.LogTerm);
        _baseConfig = Membership.From(m.Voters, m.Learners);
        _confHistory.Clear();
        SetCurrentConfig();
        _pendingSnapshot = _baseConfig.ToMetadata(m.Index, m.LogTerm);
        Send(new RaftMessage { To = m.From, Type = MessageType.AppendResponse, Index = m.Index });
    }
}
