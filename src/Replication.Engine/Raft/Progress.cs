namespace Replication.Engine.Raft;

/// <summary>
/// The leader's view of one follower (paper Figure 2 nextIndex/matchIndex; etcd tracker.Progress).
/// Invariant: 0 &lt;= Match &lt; Next. In <see cref="ProgressState.Probe"/> the leader sends one Append
/// at a time until it finds the match point; in <see cref="ProgressState.Replicate"/> it streams
/// entries optimistically, bounded by <see cref="Inflights"/> (messages and bytes). In
/// <see cref="ProgressState.Snapshot"/> the follower needs entries the leader has compacted: the
/// leader sent a Snapshot message and sends nothing else until the host reports the transfer's
/// outcome (<see cref="SnapshotDone"/>) or the follower acknowledges the snapshot index.
/// Not thread-safe.
/// </summary>
internal sealed class Progress(long next, int maxInflight, long maxInflightBytes, bool isLearner)
{
    public long Match { get; private set; }
    public long Next { get; private set; } = next;
    public ProgressState State { get; private set; } = ProgressState.Probe;
    public bool IsLearner { get; set; } = isLearner;
    /// <summary>In snapshot state: the index of the snapshot being transferred.</summary>
    public long PendingSnapshot { get; private set; }
    /// <summary>In probe state: an Append is outstanding; wait for its answer (or a heartbeat response).</summary>
    public bool ProbeSent { get; set; }
    /// <summary>Heard from since the last check-quorum round.</summary>
    public bool RecentActive { get; set; }
    /// <summary>Highest ReadIndex/lease round (leader tick of sending) this follower acknowledged.</summary>
    public long AckedRound { get; set; }
    /// <summary>Highest applied index this follower reported (in the Commit field of its responses).</summary>
    public long Applied { get; set; }
    public Inflights Inflights { get; } = new(maxInflight, maxInflightBytes);

    public bool IsPaused => State switch
    {
        ProgressState.Probe => ProbeSent,
        ProgressState.Replicate => Inflights.Full,
        _ => true,
    };

    public void BecomeProbe()
    {
        State = ProgressState.Probe;
        Next = Match + 1;
        ProbeSent = false;
        PendingSnapshot = 0;
        Inflights.Reset();
    }

    public void BecomeReplicate()
    {
        State = ProgressState.Replicate;
        Next = Match + 1;
        PendingSnapshot = 0;
        Inflights.Reset();
    }

    /// <summary>The leader sent the follower a Snapshot message for <paramref name="index"/>; pause until it is done.</summary>
    public void BecomeSnapshot(long index)
    {
        State = ProgressState.Snapshot;
        PendingSnapshot = index;
        ProbeSent = false;
        Inflights.Reset();
    }

    /// <summary>
    /// The host finished the snapshot transfer. On success the follower holds everything up to the
    /// snapshot the host sent (at <paramref name="sentIndex"/>, at least the pending one), so probing
    /// resumes just after it; on failure probing resumes after what is known to match (which will ask
    /// for a snapshot again). Either way the probe waits for the next response (a heartbeat answer at
    /// the latest) instead of going out at once.
    /// </summary>
    public void SnapshotDone(bool succeeded, long sentIndex)
    {
        long next = succeeded ? Math.Max(Match, Math.Max(PendingSnapshot, sentIndex)) + 1 : Match + 1;
        BecomeProbe();
        Next = next;
        ProbeSent = true;
    }

    /// <summary>An accepted append up to <paramref name="index"/>. Returns false if it told nothing new.</summary>
    public bool MaybeUpdate(long index)
    {
        bool updated = false;
        if (Match < index)
        {
            Match = index;
            updated = true;
            ProbeSent = false;
        }
        if (Next < index + 1) Next = index + 1;
        return updated;
    }

    /// <summary>
    /// The follower reported holding only up to <paramref name="lastIndex"/> (below Match): nothing it
    /// holds is known to match any more (its rolled-back tail may even conflict), so forget the match
    /// and probe from just after its last entry; rejections then walk back as usual.
    /// </summary>
    public void Regress(long lastIndex)
    {
        Match = 0;
        BecomeProbe();
        Next = Math.Max(1, lastIndex + 1);
    }

    /// <summary>Optimistic advance after sending entries up to <paramref name="lastIndex"/> in replicate state.</summary>
    public void SentEntries(long lastIndex, long bytes)
    {
        Next = lastIndex + 1;
        Inflights.Add(lastIndex, bytes);
    }

    /// <summary>
    /// A rejection of the append probing at <paramref name="rejected"/>, with the follower's
    /// hint that its log can only match at or below <paramref name="matchHint"/>. Returns false for
    /// a stale rejection (one about a probe already superseded).
    /// </summary>
    public bool MaybeDecrTo(long rejected, long matchHint)
    {
        if (State == ProgressState.Snapshot) return false; // waiting for the transfer, not for probes
        if (State == ProgressState.Replicate)
        {
            if (rejected <= Match) return false;
            Next = Match + 1;
            return true;
        }
        if (Next - 1 != rejected) return false;
        Next = Math.Max(Math.Min(rejected, matchHint + 1), Match + 1);
        ProbeSent = false;
        return true;
    }

    public override string ToString() => $"{State} match={Match} next={Next} inflight={Inflights.Count}/{Inflights.Bytes}B{(State == ProgressState.Snapshot ? " snapshot " + PendingSnapshot : "")}";
}

/// <summary>How the leader is currently replicating to a follower.</summary>
internal enum ProgressState
{
    Probe = 0,
    Replicate = 1,
    /// <summary>Waiting for a snapshot transfer to the follower to finish.</summary>
    Snapshot = 2,
}
