using Replication.Engine.Transport;
using Replication.Engine.Raft;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// The leader's half of a consistent cut across shards (a hot backup, see ClusterNode.Backup.cs). On the
/// loop thread, in one step, the leader of a shard raises a write barrier (new proposals are held, not
/// proposed), takes its last log index as the shard's cut index, and registers a capture of the state
/// machine at exactly that index. The coordinator lowers every barrier once all are raised.
/// <para>
/// Why that is a consistent cut: an entry at or below a cut index was proposed before that shard's
/// barrier went up, so before every barrier was up (time T); and a write acknowledged before T was
/// proposed before the barrier of its own shard went up (a held write cannot be acknowledged before its
/// barrier is lowered, after T), so its index is at or below that shard's cut. Hence if the backup holds
/// a write, it holds every write acknowledged before that write began. The capture checks that the entry
/// it reaches at the cut index is the one the leader had there (same term): an uncommitted tail
/// overwritten by a later leader fails the cut, and the coordinator starts again.
/// </para>
/// A barrier lowers itself after its hold limit (a coordinator that died must not stop writes for long)
/// and when the node loses leadership; held proposals are then proposed (or refused as not-leader, and
/// retried by their router). Thread-safe entry points; everything else runs on the loop thread.
/// </summary>
internal sealed partial class NodeHost
{
    /// <summary>
    /// Raises the write barrier of <paramref name="shard"/> (this node must lead it) for cut
    /// <paramref name="cutId"/>, for at most <paramref name="holdLimit"/>, and returns the cut index and
    /// term with the pending capture of the state machine at that index (the caller disposes it).
    /// </summary>
    /// <exception cref="RetryableException">Not the leader (with a hint), or the node stops.</exception>
    public Task<CutPoint> BeginCutAsync(int shard, Guid cutId, TimeSpan holdLimit) =>
        RunOnLoopAsync(() =>
        {
            if (!_groups.TryGetValue(shard, out var g) || g.Core.Role != RaftRole.Leader)
                throw new RetryableException($"node {Id} is not the leader of shard {shard}", ReplicaIds.NodeOf(g?.Core.Leader ?? 0));
            if (g.Barrier is { } other && other.Id != cutId) LowerBarrier(g); // an older cut's barrier: its coordinator moved on
            long index = g.Core.LastIndex, term = g.Core.LastTerm;
            g.Barrier = new WriteBarrier(cutId, _clock.Elapsed, _clock.Elapsed + holdLimit);
            var capture = new CaptureRequest(shard, index) { ExpectedTerm = term };
            StartCapture(capture);
            return new CutPoint(index, term, capture.Completion.Task);
        });

    /// <summary>Lowers the barrier of <paramref name="shard"/> raised for <paramref name="cutId"/> (if still up) and
    /// proposes what it held. Completes with how long it was up (zero when it was already gone).</summary>
    public Task<TimeSpan> EndCutAsync(int shard, Guid cutId) =>
        RunOnLoopAsync(() =>
        {
            if (!_groups.TryGetValue(shard, out var g) || g.Barrier is not { } b || b.Id != cutId) return TimeSpan.Zero;
            var held = _clock.Elapsed - b.Since;
            LowerBarrier(g);
            return held;
        });

    /// <summary>Holds a proposal while its group's barrier is up; false when there is no barrier.</summary>
    private bool HoldAtBarrier(GroupRuntime g, ProposeRequest p)
    {
        if (g.Barrier is null) return false;
        g.Held.Add(p);
        return true;
    }

    /// <summary>Lowers barriers past their hold limit, and those of groups this node no longer leads.</summary>
    private void ExpireBarriers()
    {
        foreach (var g in _groups.Values)
            if (g.Barrier is { } b && (_clock.Elapsed >= b.Until || g.Core.Role != RaftRole.Leader)) LowerBarrier(g);
    }

    private void LowerBarrier(GroupRuntime g)
    {
        g.Barrier = null;
        var held = g.Held.ToArray();
        g.Held.Clear();
        foreach (var p in held) StartProposal(p);
    }

    /// <summary>A write barrier raised for one cut: since when, and until when at most.</summary>
    private sealed record WriteBarrier(Guid Id, TimeSpan Since, TimeSpan Until);
}

/// <summary>A shard's cut: the index and term at which its capture is taken, and the capture itself.</summary>
internal sealed record CutPoint(long Index, long Term, Task<ShardSnapshot> Capture);
