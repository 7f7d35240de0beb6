using Replication.Engine.Transport;
using Replication.Engine.Raft;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// Snapshots of a shard's state machine at an exact applied index, for comparing replicas
/// (Test-ReplicationConsistency). A capture request names a target index; the loop applies
/// committed entries up to that index, opens a read transaction on state.db (<see cref="ShardSnapshot"/>),
/// and only then applies the rest of the batch. So every replica's snapshot holds exactly entries
/// 1..target, whatever each replica's apply batches look like. The tree is computed off the loop.
/// </summary>
internal sealed partial class NodeHost
{
    private readonly List<CaptureRequest> _captures = new(); // loop thread only

    /// <summary>
    /// Completes with a snapshot of <paramref name="shard"/> at applied index <paramref name="index"/>
    /// (the caller disposes it). Fails as retryable when the replica has already applied past the
    /// index, does not host the shard, or stops. Cancelling abandons the request; a snapshot taken
    /// after that is disposed by the loop. Thread-safe.
    /// </summary>
    public Task<ShardSnapshot> CaptureAtAsync(int shard, long index, CancellationToken cancellationToken)
    {
        var request = new CaptureRequest(shard, index);
        Enqueue(request);
        if (cancellationToken.CanBeCanceled)
            cancellationToken.Register(() => request.Completion.TrySetCanceled(cancellationToken));
        return request.Completion.Task;
    }

    private void StartCapture(CaptureRequest c)
    {
        if (!_groups.TryGetValue(c.Shard, out var g))
        {
            c.Completion.TrySetException(new RetryableException($"node {Id} does not host shard {c.Shard}"));
            return;
        }
        long applied = g.Core.Applied;
        if (applied == c.Index) Capture(c);
        else if (applied > c.Index) c.Completion.TrySetException(new RetryableException($"node {Id} has applied shard {c.Shard} past index {c.Index} (at {applied})"));
        else _captures.Add(c);
    }

    /// <summary>
    /// Applies a Ready's committed entries of one group, pausing at each pending capture's target
    /// index to take its snapshot. Without pending captures for the group this is one Apply call.
    /// </summary>
    private IReadOnlyList<EntryApplyResult> ApplyCommitted(GroupRuntime g, IReadOnlyList<LogEntry> entries)
    {
        int shard = g.Core.Group;
        CreateSplitGroups(g, entries);
        _captures.RemoveAll(c => c.Completion.Task.IsCompleted); // abandoned by their callers
        if (!_captures.Exists(c => c.Shard == shard)) return _storage!.Apply(shard, entries);

        var results = new List<EntryApplyResult>(entries.Count);
        long applied = g.Core.Applied;
        int start = 0;
        foreach (long target in _captures.Where(c => c.Shard == shard).Select(c => c.Index).Distinct().Order().ToArray())
        {
            int end = start;
            while (end < entries.Count && entries[end].Index <= target) end++;
            if (end > start)
            {
                results.AddRange(_storage!.Apply(shard, Slice(entries, start, end)));
                applied = Math.Max(applied, entries[end - 1].Index);
                start = end;
            }
            if (applied < target) break; // later batches will reach it
            foreach (var c in _captures.Where(c => c.Shard == shard && c.Index == target).ToArray())
            {
                _captures.Remove(c);
                if (applied == target) Capture(c);
                else c.Completion.TrySetException(new RetryableException($"node {Id} has applied shard {shard} past index {target}"));
            }
        }
        if (start < entries.Count) results.AddRange(_storage!.Apply(shard, Slice(entries, start, entries.Count)));
        return results;
    }

    /// <summary>
    /// Before a split entry is applied (its rows move to the new shard in the apply), the new shard's Raft group is
    /// created here, durably, with the membership the splitting shard has at that index: the same replicas, so no data
    /// crosses the network. Its founding state is a snapshot at <see cref="ShardCommand.SplitFoundingIndex"/> (the rows moved to it). The group comes first so a crash between the two leaves a group whose rows arrive when the
    /// split entry is applied again. A replica of the new shard this node held already (copied by snapshot before it replayed the
    /// old shard's log through the split) is neither created again here nor touched by the apply (KvStore.ApplySplit); nor is
    /// one founded on a node whose replica of the old shard was none of its replicas at the split's index.
    /// </summary>
    private void CreateSplitGroups(GroupRuntime g, IReadOnlyList<LogEntry> entries)
    {
        IReadOnlyDictionary<int, (ulong Start, ulong Last)> ranges = _kv!.SplitRanges;
        foreach (var e in entries)
        {
            if (e.Type != EntryType.Normal || !ShardCommand.IsShardCommand(e.Data) || e.Index <= g.Core.Applied) continue;
            var split = ShardCommand.Decode(e.Data);
            if (!KvStore.SplitApplies(ranges, g.Core.Group, split)) continue; // the apply ignores it too
            // As the apply leaves it for a later split entry in the same batch (SplitApplies reads the shard's own range only).
            ranges = new Dictionary<int, (ulong Start, ulong Last)>(ranges) { [g.Core.Group] = (split.LeftStart, split.LeftLast) };
            var (voters, learners) = g.Core.MembershipAtCommitted(e.Index);
            if (!voters.Contains(g.Core.Id) && !learners.Contains(g.Core.Id))
            {
                // This replica joined the old shard after the split and replays its log: it is none of the new shard's
                // founding replicas. (It used to found one anyway, with its old-shard replica's id, drop it at once as
                // not placed here, and keep that id as a tombstone; the metadata later gave the same id to the replica
                // the ring placed here, which this node then refused forever: a move that never finished.)
                _kv.ForgoSplitFounding(split.NewShard);
                continue;
            }
            // The new group has the same replicas: each keeps its member id (ReplicaIds; the metadata copies the ids along).
            if (AddGroup(split.NewShard, g.Core.Id, voters, learners, ShardCommand.SplitFoundingIndex))
                _options.Log?.Invoke($"node {Id}: shard {g.Core.Group} split at index {e.Index}: shard {split.NewShard} created with voters [{string.Join(",", voters.Select(ReplicaIds.NodeOf))}]");
        }
    }

    private void Capture(CaptureRequest c)
    {
        ShardSnapshot snapshot;
        try
        {
            snapshot = ShardSnapshot.Begin(_kv!.FileOf(c.Shard), Id, c.Shard);
        }
        catch (Exception ex) when (ex is Microsoft.Data.Sqlite.SqliteException or IOException)
        {
            c.Completion.TrySetException(new RetryableException($"node {Id} could not snapshot shard {c.Shard}: {ex.Message}"));
            return;
        }
        if (snapshot.Index != c.Index || (c.ExpectedTerm is long term && snapshot.Term != term))
        {
            snapshot.Dispose();
            c.Completion.TrySetException(new RetryableException(
                $"node {Id}: shard {c.Shard} snapshot is at index {snapshot.Index} term {snapshot.Term}, not {c.Index}{(c.ExpectedTerm is long t ? $" term {t}" : "")} (the log changed under a leader change)"));
            return;
        }
        if (!c.Completion.TrySetResult(snapshot)) snapshot.Dispose(); // the caller gave up meanwhile
    }

    private void FailCaptures(Exception reason)
    {
        foreach (var c in _captures) c.Completion.TrySetException(reason);
        _captures.Clear();
    }

    private static LogEntry[] Slice(IReadOnlyList<LogEntry> entries, int start, int end)
    {
        var slice = new LogEntry[end - start];
        for (int i = start; i < end; i++) slice[i - start] = entries[i];
        return slice;
    }

    private sealed record CaptureRequest(int Shard, long Index)
    {
        /// <summary>When set, the entry applied at <see cref="Index"/> must have this term (a cut's capture: see NodeHost.Cut.cs).</summary>
        public long? ExpectedTerm { get; init; }
        public TaskCompletionSource<ShardSnapshot> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
