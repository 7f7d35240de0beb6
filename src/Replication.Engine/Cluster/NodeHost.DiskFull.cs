using Replication.Engine.Transport;
using Replication.Engine.Raft;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// A full disk: the node stays up, serves reads, refuses new writes with <see cref="DiskFullException"/>, and takes
/// writes again by itself once a write succeeds. Every other storage failure stops the node (NodeHost.Loop), a failed
/// fsync first among them (<see cref="StorageErrors"/>).
/// <para>
/// Why a full disk can be survived: SQLite reports it (SQLITE_FULL) from a write, before anything is made durable,
/// and rolls the transaction back; no fsync failed, so the file is exactly as it was before the write, and the write
/// can be made again later. What Raft then needs, and how this file gives it:
/// <list type="bullet">
/// <item>A node must never send a message that promises a state it has not persisted. A failed Save is treated as
/// "not yet persisted": the core is not told the entries are stable (no Advance of them), the host's record of the
/// durable hard state (<c>GroupRuntime.Persisted</c>) is not moved, and the core offers the same entries and hard
/// state again in its next Ready (they stay above its stable index). Of the messages of that Ready only those that
/// promise nothing about the unsaved part leave (<see cref="MaySendUnpersisted"/>), and none at all from a group whose
/// term or vote is not durable (a vote, or a term learned from a peer, must be on disk before this node speaks in
/// that term).</item>
/// <item>A follower that cannot persist therefore never acknowledges entries (no accepted AppendResponse): the leader
/// does not count it. It still answers heartbeats, so a leader with a quorum of live but full followers keeps its
/// leadership and serves linearizable reads (ReadIndex needs only heartbeat answers in its term).</item>
/// <item>A leader that cannot persist never counts itself toward a quorum for what it could not save: the core counts
/// the leader only for entries the host reported stable. It may still send those entries (followers that can persist
/// them may make them committed by a majority of durable copies — the leader's own copy is not needed for that, as in
/// etcd, which overlaps the leader's write with sending), but it applies an entry only once its own copy is durable,
/// and a write is acknowledged only once applied: so every acknowledged write is durable on a majority that includes
/// the leader that acknowledged it.</item>
/// <item>A leader whose followers can persist what it cannot steps aside (<see cref="StepAsideIfStuck"/>): it hands
/// leadership to the voter whose log (or state machine) is furthest ahead of its own durable one, so a cluster with
/// one full disk keeps taking writes. When every disk is full nobody is ahead, and the leader stays: reads go on,
/// writes get DiskFull at once.</item>
/// <item>Committed entries whose apply fails (state.db full) stay committed in the durable log; the state-machine
/// transaction rolled back, so they are applied again, in order, at the next attempt. Reads that need them wait.</item>
/// </list>
/// The node retries a store no more often than every <see cref="DiskFullRetryInterval"/>; between retries the writes
/// that are due are skipped as if they had failed, and when nothing needs writing it probes with a one-page write that
/// changes nothing (<see cref="INodeStorage.Probe"/>). A proposal is refused with DiskFull (nothing proposed, so
/// definitely not written) while either store is full. Not survived: a full disk while installing a snapshot from the
/// leader (the core has already moved to it), or while compacting — the node stops then, as for any storage failure,
/// and starts again from its files once there is room.
/// </para>
/// Loop thread only, except <see cref="DiskFull"/>.
/// </summary>
internal sealed partial class NodeHost
{
    /// <summary>How often a node whose disk is full tries to write again.</summary>
    internal static readonly TimeSpan DiskFullRetryInterval = TimeSpan.FromMilliseconds(200);

    /// <summary>How long a leader waits before asking the same voter again to take over (its own disk may be full too).</summary>
    private static readonly TimeSpan StepAsideRetry = TimeSpan.FromSeconds(2);

    private TimeSpan? _logFullUntil;   // raft.db reported full; no write is attempted before this time (null: it takes writes)
    private TimeSpan? _stateFullUntil; // the same for state.db
    private TimeSpan _nextStepAside;
    private readonly Dictionary<(int Group, int Target), TimeSpan> _stepAsideTried = new(); // a target that could not take over is not asked again at once
    private volatile string? _diskFull;
    private volatile int[] _fullPeers = []; // peers that reported a full disk in their last status (ClusterNode.Status.cs)

    /// <summary>Records which peers reported a full disk in their latest status. Thread-safe.</summary>
    internal void NoteFullPeers(IEnumerable<int> peers) => _fullPeers = peers.ToArray();

    /// <summary>Why this node refuses writes now (its disk is full, and since when); null while it takes writes. Thread-safe.</summary>
    public string? DiskFull => _diskFull;

    private bool IsDiskFull => _logFullUntil is not null || _stateFullUntil is not null;

    /// <summary>
    /// Persists <paramref name="writes"/> (one transaction, one fsync): <see cref="SaveOutcome.Saved"/>, or, when the disk
    /// is full, <see cref="SaveOutcome.Failed"/> (tried now) or <see cref="SaveOutcome.Deferred"/> (it was full a moment
    /// ago and the retry is not due); either way nothing was stored. Any other failure throws and stops the node.
    /// </summary>
    private SaveOutcome TrySave(IReadOnlyList<GroupWrite> writes)
    {
        if (_logFullUntil is { } until && _clock.Elapsed < until) return SaveOutcome.Deferred;
        try
        {
            _storage!.Save(writes);
        }
        catch (Exception e) when (StorageErrors.IsDiskFull(e))
        {
            _logFullUntil = NoteDiskFull("raft.db", e);
            return SaveOutcome.Failed;
        }
        if (_logFullUntil is not null)
        {
            _logFullUntil = null;
            NoteDiskRoom("raft.db");
        }
        return SaveOutcome.Saved;
    }

    private enum SaveOutcome { Saved, Failed, Deferred }

    /// <summary>
    /// After a save failed for a full disk: a group whose term or vote in memory is ahead of its files (it campaigned,
    /// or learned a higher term) would stay silent until the disk has room, since nothing may leave in a term that is not
    /// durable; its core is restarted from the files instead, as a crash would (it loses only what was never persisted
    /// nor sent), and it comes back a follower in its durable term, answering the leader it had. Only non-leaders: a
    /// leader's term and vote are always durable. At most once per failed save attempt (every
    /// <see cref="DiskFullRetryInterval"/>), so a node that keeps hearing a higher term does not reread its log in a loop.
    /// </summary>
    private void RestartFromFiles(GroupRuntime g)
    {
        int group = g.Core.Group;
        var stored = _logStore!.Load(group);
        g.Core = NewCore(group, g.Core.Id, stored, stored.Snapshot, _kv!.AppliedIndex(group));
        g.Persisted = stored.State;
        foreach (var r in g.PendingReads.Values) Settle(r.Completion, new RetryableException($"node {Id} restarted shard {group} from its files (disk full)"));
        g.PendingReads.Clear();
        AbortIncoming(group);
        _options.Log?.Invoke($"node {Id}: shard {group}'s term ran ahead of its full disk; restarted it from its files at term {stored.State.Term}");
    }

    /// <summary>
    /// Applies committed entries of <paramref name="g"/>; null when state.db is full (now, or a moment ago): then nothing
    /// of them was applied (the store's transaction rolled back), and the core offers them again. A full disk after part
    /// of the entries were applied (a consistency capture splits a batch) is not retried: it throws and stops the node,
    /// because the results of the applied part would be lost.
    /// </summary>
    private IReadOnlyList<EntryApplyResult>? TryApply(GroupRuntime g, IReadOnlyList<LogEntry> entries)
    {
        if (_stateFullUntil is { } until && _clock.Elapsed < until) return null;
        IReadOnlyList<EntryApplyResult> results;
        try
        {
            results = ApplyCommitted(g, entries);
        }
        catch (Exception e) when (StorageErrors.IsDiskFull(e) && _kv!.AppliedIndex(g.Core.Group) == g.Core.Applied)
        {
            _stateFullUntil = NoteDiskFull("state.db", e);
            return null;
        }
        if (_stateFullUntil is not null)
        {
            _stateFullUntil = null;
            NoteDiskRoom("state.db");
        }
        return results;
    }

    /// <summary>
    /// While the disk is full (either store: they share it), only the groups this node leads are ticked. A node that cannot persist a vote cannot
    /// take part in an election (a candidate's own vote, and every vote it grants, must be durable first), so its
    /// followers do not count down to one: otherwise a moment's delay (a busy machine) would make it campaign, raise
    /// its term in memory, fall silent (nothing leaves in a term that is not durable), and stop answering a healthy
    /// leader — and with every disk full, two such nodes would depose the one leader that can still serve reads.
    /// Other nodes, whose disks have room, elect a new leader without it if this one's leader is gone.
    /// </summary>
    private bool MayTick(GroupRuntime g) => !IsDiskFull || g.Core.Role == RaftRole.Leader;

    /// <summary>
    /// What may leave from a Ready whose entries or hard state could not be saved (the group's term and vote being durable):
    /// nothing that acknowledges entries (an accepted AppendResponse) or grants or asks for a vote. Heartbeats and their
    /// answers, appends from a leader, rejections, pre-votes and leader transfer promise nothing about this node's disk.
    /// </summary>
    private static bool MaySendUnpersisted(RaftMessage m) => m.Type switch
    {
        MessageType.AppendResponse => m.Reject,
        MessageType.Vote or MessageType.VoteResponse => false,
        _ => true,
    };

    /// <summary>
    /// Refuses a proposal to a group this node leads while its disk is full — DiskFull, or a retryable refusal naming the
    /// voter it is handing the group to — or while so many of the group's voters report a full disk that fewer than a
    /// quorum could persist the entry (it could never commit: DiskFull at once instead of a timeout of unknown outcome).
    /// Null when the write can go ahead (or this node does not lead: the usual refusal follows).
    /// </summary>
    private Exception? DiskFullRefusal(GroupRuntime g)
    {
        if (g.Core.Role != RaftRole.Leader) return null;
        if (!IsDiskFull)
        {
            var full = _fullPeers;
            if (full.Length == 0) return null;
            int canPersist = g.Core.Voters.Count(v => v == g.Core.Id || Array.IndexOf(full, ReplicaIds.NodeOf(v)) < 0);
            if (canPersist > g.Core.Voters.Count / 2) return null;
            return new DiskFullException($"Shard {g.Core.Group} cannot take writes: the disks of nodes {string.Join(", ", g.Core.Voters.Select(ReplicaIds.NodeOf).Where(v => Array.IndexOf(full, v) >= 0).Order())} are full, leaving no quorum of its voters that can persist one. Nothing was written; writes resume by themselves once the disks have room.");
        }
        if (g.Core.LeadTransferee is int target and not 0)
            return new RetryableException($"node {Id} is handing shard {g.Core.Group} to node {ReplicaIds.NodeOf(target)}: its disk is full", ReplicaIds.NodeOf(target));
        return new DiskFullException($"Node {Id} cannot take writes: {_diskFull} Nothing was written; writes resume by themselves once the disk has room.");
    }

    /// <summary>Once per loop iteration while the disk is full: probe when a retry is due and nothing else tried, and step aside where a follower is ahead.</summary>
    private void DiskFullTick()
    {
        if (!IsDiskFull) return;
        var now = _clock.Elapsed;
        if ((_logFullUntil ?? TimeSpan.MaxValue) <= now || (_stateFullUntil ?? TimeSpan.MaxValue) <= now)
        {
            try
            {
                _storage!.Probe();
            }
            catch (Exception e) when (StorageErrors.IsDiskFull(e))
            {
                var next = NoteDiskFull(_logFullUntil is not null ? "raft.db" : "state.db", e);
                if (_logFullUntil is not null) _logFullUntil = next;
                if (_stateFullUntil is not null) _stateFullUntil = next;
                return;
            }
            bool log = _logFullUntil is not null, state = _stateFullUntil is not null;
            _logFullUntil = null;
            _stateFullUntil = null;
            NoteDiskRoom(log && state ? "raft.db and state.db" : log ? "raft.db" : "state.db");
            return;
        }
        if (now >= _nextStepAside)
        {
            _nextStepAside = now + DiskFullRetryInterval;
            foreach (var g in _groups.Values) StepAsideIfStuck(g);
        }
    }

    /// <summary>
    /// A leader that cannot persist hands the group to the voter that can: one whose acknowledged log reaches past this
    /// node's durable log (raft.db full), or that has applied more (state.db full). The core's transfer catches the target
    /// up first and then sends TimeoutNow. Nobody ahead (every disk full): stay, and keep serving reads.
    /// </summary>
    private void StepAsideIfStuck(GroupRuntime g)
    {
        var core = g.Core;
        if (core.Role != RaftRole.Leader || core.LeadTransferee != 0) return;
        var match = core.MatchIndexes();
        var applied = core.AppliedIndexes();
        long mine = match.GetValueOrDefault(core.Id); // the leader's own match is what it made durable
        int best = 0;
        long bestMatch = -1;
        foreach (int v in core.Voters)
        {
            if (v == core.Id) continue;
            bool ahead = (_logFullUntil is not null && match.GetValueOrDefault(v) > mine)
                || (_stateFullUntil is not null && applied.GetValueOrDefault(v) > core.Applied);
            if (_stepAsideTried.TryGetValue((core.Group, v), out var tried) && _clock.Elapsed - tried < StepAsideRetry) continue;
            if (ahead && match.GetValueOrDefault(v) > bestMatch)
            {
                best = v;
                bestMatch = match.GetValueOrDefault(v);
            }
        }
        if (best == 0) return;
        _stepAsideTried[(core.Group, best)] = _clock.Elapsed;
        if (core.TransferLeadership(best))
            _options.Log?.Invoke($"node {Id}: disk full; handing shard {core.Group} to node {ReplicaIds.NodeOf(best)}, which can persist (its match {bestMatch}, ours {mine})");
    }

    /// <summary>
    /// Receives a snapshot chunk; when its staging file cannot grow (ENOSPC), the transfer is dropped and refused (the
    /// leader starts it again later) and the node counts as full until a probe succeeds, instead of stopping.
    /// </summary>
    private void OnSnapshotChunkOrDiskFull(RaftMessage chunk)
    {
        try
        {
            OnSnapshotChunk(chunk);
        }
        catch (IOException e) when (StorageErrors.IsDiskFull(e))
        {
            AbortIncoming(chunk.Group);
            Ack(chunk, reject: true);
            _stateFullUntil = NoteDiskFull("snapshot staging file", e);
        }
    }

    private TimeSpan NoteDiskFull(string store, Exception e)
    {
        if (_diskFull is null)
        {
            _diskFull = $"its disk is full ({store}: {e.Message}) since {DateTimeOffset.UtcNow:O}.";
            _options.Log?.Invoke($"node {Id}: {store} cannot write, the disk is full ({e.Message}); refusing writes and retrying every {DiskFullRetryInterval.TotalMilliseconds:0} ms");
        }
        return _clock.Elapsed + DiskFullRetryInterval;
    }

    private void NoteDiskRoom(string store)
    {
        if (IsDiskFull) return;
        _diskFull = null;
        _stepAsideTried.Clear();
        _options.Log?.Invoke($"node {Id}: {store} writes again; taking writes");
    }
}
