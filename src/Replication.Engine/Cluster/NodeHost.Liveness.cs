using Replication.Engine.Raft;
using Replication.Engine.Transport;

namespace Replication.Engine.Cluster;

/// <summary>
/// Node liveness for quiescent groups (RaftNode.Quiesce.cs): an idle group's leader stops heartbeating, and what tells its
/// followers that the leader is still there is one signal per peer node, not per group, every <see cref="LivenessTicks"/>
/// ticks (<see cref="MessageType.Liveness"/>; 80 ms with the default timing, against a heartbeat every 30 ms per group and
/// follower). Sent from the loop thread when its ticks come due, so a node whose loop is stuck or frozen (a full GC, SIGSTOP,
/// a drill's freeze) falls silent like a dead one and its followers campaign as they do today. Sent to every node that
/// shares a group with this one; a received signal is handed to the cores of the quiesced groups, for each member the
/// sender hosts (<see cref="RaftNode.HeardFrom"/>: the followers' election timers restart when it comes from their
/// leader's node, and a quiesced leader counts the member active for check-quorum). It never renews a lease.
/// Loop thread only.
/// </summary>
internal sealed partial class NodeHost
{
    /// <summary>Ticks since this node last sent its liveness signal.</summary>
    private long _livenessPhase;

    /// <summary>A fifth of the election timeout (at least a heartbeat): a follower hears its leader's node four or more
    /// times before it could time out, as it heard about thirteen heartbeats before.</summary>
    private int LivenessTicks => Math.Max(_options.HeartbeatTicks, _options.ElectionTicks / 5);

    /// <summary>After ticks came due (<paramref name="due"/> of them): sends the liveness signal when its period has passed.</summary>
    private void MaybeSendLiveness(long due)
    {
        if (!_options.Quiesce || _transport is null) return;
        _livenessPhase += due;
        if (_livenessPhase < LivenessTicks) return;
        _livenessPhase = 0;
        var peers = new HashSet<int>();
        foreach (var g in _groups.Values)
        {
            foreach (int member in g.Core.Voters) peers.Add(ReplicaIds.NodeOf(member));
            foreach (int member in g.Core.Learners) peers.Add(ReplicaIds.NodeOf(member));
        }
        peers.Remove(Id);
        foreach (int peer in peers) _transport.Send(new RaftMessage { Type = MessageType.Liveness, From = Id, To = peer });
    }

    /// <summary>Ticks a loop whose groups are all quiesced lets come due before it wakes for them.</summary>
    private const int QuietTickStride = 5;

    /// <summary>
    /// How much longer than the next tick the loop may sleep: (<see cref="QuietTickStride"/> - 1) ticks when every group
    /// hosted here is quiesced, else none. Nothing then happens per tick but election timers counting up, and the ticks
    /// are not lost, only delivered together by DeliverDueTicks (all through Tick, since a stride is below ElectionTicks/2:
    /// timers and the lease clock see every one of them), so a follower whose leader's node went silent campaigns at most a
    /// stride (50 ms) later. Anything that arrives (a message, a request) wakes the loop at once, as before.
    /// </summary>
    private TimeSpan QuietWait()
    {
        if (!_options.Quiesce || _groups.Count == 0 || QuietTickStride >= _options.ElectionTicks / 2) return TimeSpan.Zero;
        foreach (var g in _groups.Values)
            if (!g.Core.Quiesced) return TimeSpan.Zero;
        return _options.TickInterval * (QuietTickStride - 1);
    }

    /// <summary>A peer node's liveness signal: fed to every quiesced group for the members that node hosts.</summary>
    private void OnLiveness(RaftMessage m)
    {
        int node = m.From;
        DateTimeOffset? now = null;
        foreach (var g in _groups.Values)
        {
            var core = g.Core;
            if (!core.Quiesced || IsInstalling(core.Group)) continue;
            foreach (int member in core.Voters)
                if (ReplicaIds.NodeOf(member) == node) core.HeardFrom(member);
            foreach (int member in core.Learners)
                if (ReplicaIds.NodeOf(member) == node) core.HeardFrom(member);
            if (core.Role != RaftRole.Leader && core.Leader != 0 && ReplicaIds.NodeOf(core.Leader) == node) g.LastContact = now ??= DateTimeOffset.UtcNow;
        }
    }
}
