using Replication.Engine.Transport;
using Replication.Engine.Raft;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// Requests into the node loop (proposals, reads, leader transfer) and their completion.
/// The public methods are thread-safe; everything else here runs on the loop thread.
/// </summary>
internal sealed partial class NodeHost
{
    private long _nextReadContext;

    /// <summary>
    /// Proposes <paramref name="commands"/> (each an encoded <see cref="KvCommand"/>, one log entry
    /// each) to the shard's Raft group, which must be led by this node. Completes with one outcome
    /// per command once the concern is met. Throws <see cref="RetryableException"/> when this node is
    /// not the leader or stops; a <see cref="ProposalOutcome.Lost"/> outcome means that entry was
    /// overwritten after a leader change and was never applied (safe to propose again).
    /// </summary>
    public Task<IReadOnlyList<ProposalOutcome>> ProposeAsync(int shard, IReadOnlyList<byte[]> commands, WriteConcern concern)
    {
        var request = new ProposeRequest(shard, commands, concern);
        Enqueue(request);
        return request.Completion.Task;
    }

    /// <summary>
    /// Confirms a read at this node, which must lead the shard: completes with an applied index
    /// at which the local state machine reflects every write acknowledged before the call
    /// (ReadIndex, or the leader lease when <paramref name="lease"/> and it is valid).
    /// </summary>
    /// <param name="affects">For a read of one key: whether a log entry may change what it returns. While this node cannot
    /// apply (its state.db is full), a read is served at the applied index when none of the committed entries not yet applied
    /// affects it; without it (null) the read waits until they are applied.</param>
    public Task<long> ConfirmReadAsync(int shard, bool lease, Func<LogEntry, bool>? affects = null)
    {
        var request = new ReadRequest(shard, lease, affects);
        Enqueue(request);
        return request.Completion.Task;
    }

    /// <summary>Asks this node, leader of <paramref name="shard"/>, to hand leadership to <paramref name="target"/>.</summary>
    public Task<bool> TransferLeadershipAsync(int shard, int target)
    {
        var request = new TransferRequest(shard, target);
        Enqueue(request);
        return request.Completion.Task;
    }

    private void StartProposal(ProposeRequest p)
    {
        if (!_groups.TryGetValue(p.Shard, out var g))
        {
            Settle(p.Completion, new RetryableException($"node {Id} does not host shard {p.Shard}"));
            return;
        }
        if (HoldAtBarrier(g, p)) return; // a consistent cut is being taken (NodeHost.Cut.cs)
        if (DiskFullRefusal(g) is { } refusal) // NodeHost.DiskFull.cs: nothing is proposed while the disk is full
        {
            Settle(p.Completion, refusal);
            return;
        }
        long first = g.Core.Propose(p.Commands);
        if (first == 0)
        {
            Settle(p.Completion, new RetryableException($"node {Id} is not the leader of shard {p.Shard}", ReplicaIds.NodeOf(g.Core.Leader)));
            return;
        }
        var batch = new ProposalBatch(p, first, g.Core.Term);
        for (int i = 0; i < p.Commands.Count; i++)
        {
            // An older proposal still waiting at this index had its entry truncated (the core just
            // appended a new one there in a later term): it can never apply, so it is lost now.
            if (g.PendingByIndex.Remove(first + i, out var superseded)) Resolve(g, superseded, first + i, ProposalOutcome.LostEntry);
            g.PendingByIndex[first + i] = batch;
        }
    }

    private void StartRead(ReadRequest r)
    {
        if (!_groups.TryGetValue(r.Shard, out var g))
        {
            Settle(r.Completion, new RetryableException($"node {Id} does not host shard {r.Shard}"));
            return;
        }
        if (r.Lease)
        {
            long index = g.Core.LeaseReadIndex();
            if (index >= 0)
            {
                g.AwaitingApply.Add((index, r));
                return;
            }
            // No valid lease (expired, or a new leader): fall back to a ReadIndex round.
        }
        long ctx = ++_nextReadContext;
        if (!g.Core.ReadIndex(ctx))
        {
            Settle(r.Completion, new RetryableException($"node {Id} is not the leader of shard {r.Shard}", ReplicaIds.NodeOf(g.Core.Leader)));
            return;
        }
        g.PendingReads[ctx] = r;
    }

    private void StartTransfer(TransferRequest t)
    {
        // The target is a node: its member in the group's voters (ReplicaIds).
        bool ok = _groups.TryGetValue(t.Shard, out var g)
            && g.Core.Voters.FirstOrDefault(v => ReplicaIds.NodeOf(v) == t.Target) is int member and not 0
            && g.Core.TransferLeadership(member);
        t.Completion.TrySetResult(ok);
    }

    private void OnEntriesPersisted(GroupRuntime g, IReadOnlyList<LogEntry> entries)
    {
        // WriteConcern.Leader: acknowledged once the leader's own append is durable.
        foreach (var e in entries)
        {
            if (!g.PendingByIndex.TryGetValue(e.Index, out var batch) || batch.Request.Concern != WriteConcern.Leader) continue;
            if (e.Term != batch.Term || e.Index != batch.LastIndex) continue;
            for (long i = batch.First; i <= batch.LastIndex; i++) g.PendingByIndex.Remove(i);
            Acknowledge(batch.Request, Enumerable.Range(0, batch.Request.Commands.Count).Select(i => new ProposalOutcome(batch.First + i, null, Lost: false)).ToArray());
        }
    }

    private void OnEntriesApplied(GroupRuntime g, IReadOnlyList<LogEntry> entries, IReadOnlyList<EntryApplyResult> results)
    {
        var byIndex = results.ToDictionary(r => r.Index);
        foreach (var e in entries)
        {
            if (!g.PendingByIndex.Remove(e.Index, out var batch)) continue;
            Resolve(g, batch, e.Index, e.Term == batch.Term && byIndex.TryGetValue(e.Index, out var r)
                ? new ProposalOutcome(e.Index, r.Results, Lost: false)
                : ProposalOutcome.LostEntry);
        }
    }

    /// <summary>Records the outcome of one entry of a batch; completes the batch when it was the last.</summary>
    private void Resolve(GroupRuntime g, ProposalBatch batch, long index, ProposalOutcome outcome)
    {
        batch.Outcomes[(int)(index - batch.First)] = outcome;
        if (--batch.Remaining > 0) return;
        if (batch.Request.Concern == WriteConcern.All && batch.Outcomes.Any(o => !o!.Lost)) g.AwaitingAll.Add(batch);
        else Acknowledge(batch.Request, batch.Outcomes!);
    }

    /// <summary>Queues a write's answer; <see cref="ReleaseAcknowledgements"/> sends it once this loop
    /// pass has published its status. Contract: when a caller sees its write acknowledged, the node's
    /// <see cref="Status"/> already shows the commit and apply that acknowledged it.</summary>
    private void Acknowledge(ProposeRequest request, IReadOnlyList<ProposalOutcome> outcomes) =>
        _acknowledgements.Add((request, outcomes));

    private void ReleaseAcknowledgements()
    {
        foreach (var (request, outcomes) in _acknowledgements) Settle(request.Completion, outcomes);
        _acknowledgements.Clear();
    }

    /// <summary>
    /// Completes a write or read request (<see cref="ProposeRequest"/>, <see cref="ReadRequest"/>) off the loop thread. On
    /// the loop thread the completion is kept until the pass ends (<see cref="ReleaseSettlements"/>), and then the pass's
    /// completions run together, in order, on ONE thread-pool work item, each continuation inline (the request's answer is
    /// encoded and written there). A task completed with RunContinuationsAsynchronously costs a work item per request
    /// instead, and on this paravirtualized machine every work item that wakes a pool thread costs about as much as the
    /// request's own work (bench finding: 15 pool context switches per write at 64 clients). Off the loop thread (a stop)
    /// each completion gets a work item of its own.
    /// </summary>
    private void Settle<T>(TaskCompletionSource<T> completion, T value) => Defer(() => completion.TrySetResult(value));

    /// <inheritdoc cref="Settle{T}(TaskCompletionSource{T}, T)"/>
    private void Settle<T>(TaskCompletionSource<T> completion, Exception error) => Defer(() => completion.TrySetException(error));

    private void Defer(Action complete)
    {
        if (Thread.CurrentThread == _thread) _settlements.Add(complete);
        else ThreadPool.UnsafeQueueUserWorkItem(static c => c(), complete, preferLocal: false);
    }

    /// <summary>Hands the completions this pass kept (<see cref="Settle{T}(TaskCompletionSource{T}, T)"/>) to one work item.</summary>
    private void ReleaseSettlements()
    {
        if (_settlements.Count == 0) return;
        var batch = _settlements;
        _settlements = new List<Action>();
        ThreadPool.UnsafeQueueUserWorkItem(static b =>
        {
            foreach (var complete in b) complete();
        }, batch, preferLocal: false);
    }

    private void OnReadConfirmed(GroupRuntime g, ReadState rs)
    {
        if (g.PendingReads.Remove(rs.Context, out var r)) g.AwaitingApply.Add((rs.Index, r));
    }

    private void OnRoleChanged(GroupRuntime g, SoftState ss)
    {
        if (ss.Role == RaftRole.Leader) return;
        AbortSnapshotTransfers(g.Core.Group);
        // Unconfirmed reads were dropped by the core with its leadership; let the router retry elsewhere.
        foreach (var r in g.PendingReads.Values)
            Settle(r.Completion, new RetryableException($"node {Id} lost leadership of shard {g.Core.Group}", ReplicaIds.NodeOf(ss.Leader)));
        g.PendingReads.Clear();
    }

    /// <summary>Releases reads whose index is applied, and All-concern writes every voter has applied.</summary>
    private void CompleteWaiters()
    {
        foreach (var g in _groups.Values)
        {
            if (g.AwaitingApply.Count > 0)
            {
                long applied = g.Core.Applied;
                g.AwaitingApply.RemoveAll(w =>
                {
                    if (w.Index > applied && !UnaffectedWhileFull(g, w.Index, w.Request)) return false;
                    Settle(w.Request.Completion, applied);
                    return true;
                });
            }
            if (g.AwaitingAll.Count > 0)
            {
                // The leader knows how far each voter applied. A node that stepped down while the write waited does not (bug
                // fixed: such a write, committed and applied here, waited out its whole timeout, seen as a WriteConcern.All
                // timeout under load, where leaders change): it asks what the voters' own status reports say.
                var applied = g.Core.AppliedIndexes();
                g.AwaitingAll.RemoveAll(b =>
                {
                    bool all = applied.Count > 0
                        ? g.Core.Voters.All(v => applied.TryGetValue(v, out long a) && a >= b.LastIndex)
                        : _options.VotersApplied?.Invoke(g.Core.Group, b.LastIndex, g.Core.Voters) == true;
                    if (!all) return false;
                    Acknowledge(b.Request, b.Outcomes!);
                    return true;
                });
            }
        }
    }

    /// <summary>At most this many committed entries not yet applied are looked through for a read while state.db is full.</summary>
    private const int MaxUnappliedLookedAt = 10_000;

    /// <summary>
    /// While state.db is full the committed entries after the applied index cannot be applied (NodeHost.DiskFull.cs), and a
    /// linearizable read confirmed at <paramref name="readIndex"/> would wait for them until there is room (bug fixed: a
    /// leader whose state.db filled right after an entry committed answered no read at all while full, "could not get an
    /// answer from a quorum" after 20 s). When none of those entries can change what the read returns, the applied state
    /// already holds its answer as of <paramref name="readIndex"/>: the read is served from it, still linearizable.
    /// </summary>
    private bool UnaffectedWhileFull(GroupRuntime g, long readIndex, ReadRequest r)
    {
        if (r.Affects is not { } affects || _stateFullUntil is null || readIndex - g.Core.Applied > MaxUnappliedLookedAt) return false;
        foreach (var e in g.Core.CommittedNotApplied(readIndex))
            if (e.Type == EntryType.Normal && affects(e)) return false;
        return true;
    }

    private void FailEverything(RetryableException reason)
    {
        // Requests not yet started never touched the log; proposals already appended may still commit elsewhere.
        var ambiguous = new RetryableException(reason.Message + " (the write may still commit)", reason.LeaderHint, ambiguous: true);
        object? work;
        while (_inbox.TryDequeue(out work))
        {
            switch (work)
            {
                case ProposeRequest p: Settle(p.Completion, reason); break;
                case ReadRequest r: Settle(r.Completion, reason); break;
                case TransferRequest t: t.Completion.TrySetException(reason); break;
                case CaptureRequest c: c.Completion.TrySetException(reason); break;
                case LoopWork w: w.Fail(reason); break;
            }
        }
        FailCaptures(reason);
        // Answers not yet released are ambiguous to their callers now, like any write cut by a crash.
        foreach (var (request, _) in _acknowledgements) Settle(request.Completion, ambiguous);
        _acknowledgements.Clear();
        foreach (var g in _groups.Values) FailGroup(g, reason, ambiguous);
    }

    /// <summary>Fails everything waiting on one group: held proposals (never proposed) with <paramref name="reason"/>,
    /// proposals in the log with <paramref name="ambiguous"/>.</summary>
    private void FailGroup(GroupRuntime g, RetryableException reason, RetryableException ambiguous)
    {
        foreach (var p in g.Held) Settle(p.Completion, reason);
        g.Held.Clear();
        foreach (var b in g.PendingByIndex.Values.Concat(g.AwaitingAll)) Settle(b.Request.Completion, ambiguous);
        foreach (var r in g.PendingReads.Values) Settle(r.Completion, reason);
        foreach (var (_, r) in g.AwaitingApply) Settle(r.Completion, reason);
    }

    /// <summary>A write into the loop. Its completion runs continuations synchronously: it is only ever completed through
    /// <see cref="Settle{T}(TaskCompletionSource{T}, T)"/>, never on the loop thread itself.</summary>
    private sealed record ProposeRequest(int Shard, IReadOnlyList<byte[]> Commands, WriteConcern Concern)
    {
        public TaskCompletionSource<IReadOnlyList<ProposalOutcome>> Completion { get; } = new();
    }

    /// <summary>A read confirmation into the loop; completed like <see cref="ProposeRequest"/>.</summary>
    private sealed record ReadRequest(int Shard, bool Lease, Func<LogEntry, bool>? Affects)
    {
        public TaskCompletionSource<long> Completion { get; } = new();
    }

    private sealed record TransferRequest(int Shard, int Target)
    {
        public TaskCompletionSource<bool> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>The entries of one proposal, tracked until each is applied (or found overwritten).</summary>
    private sealed class ProposalBatch(ProposeRequest request, long first, long term)
    {
        public ProposeRequest Request { get; } = request;
        public long First { get; } = first;
        public long LastIndex { get; } = first + request.Commands.Count - 1;
        public long Term { get; } = term;
        public ProposalOutcome?[] Outcomes { get; } = new ProposalOutcome?[request.Commands.Count];
        public int Remaining { get; set; } = request.Commands.Count;
    }

    /// <summary>Per-group state the loop keeps beside the core.</summary>
    private sealed class GroupRuntime(RaftNode core)
    {
        /// <summary>Replaced only when a full disk makes the host restart the core from its files (NodeHost.DiskFull.cs).</summary>
        public RaftNode Core { get; set; } = core;
        public Dictionary<long, ProposalBatch> PendingByIndex { get; } = new();
        public List<ProposalBatch> AwaitingAll { get; } = new();
        public Dictionary<long, ReadRequest> PendingReads { get; } = new();
        public List<(long Index, ReadRequest Request)> AwaitingApply { get; } = new();
        public DateTimeOffset? LastContact { get; set; }
        /// <summary>The hard state last written to raft.db for this group.</summary>
        public HardState Persisted { get; set; } = core.HardState;
        public RaftRole LastRole { get; set; } = RaftRole.Follower;
        /// <summary>The write barrier of a cut in progress (NodeHost.Cut.cs), and the proposals it holds.</summary>
        public WriteBarrier? Barrier { get; set; }
        public List<ProposeRequest> Held { get; } = new();
        public DateTimeOffset StateSince { get; set; } = DateTimeOffset.UtcNow;
        /// <summary>The status last built for this group, what it was built from, and (on a leader) the match indexes
        /// then: reused by PublishStatus while none of them moved (NodeHost.cs).</summary>
        public GroupStatus? Published { get; set; }
        public StatusInputs PublishedInputs { get; set; }
        public IReadOnlyDictionary<int, long>? PublishedMatch { get; set; }
    }
}
