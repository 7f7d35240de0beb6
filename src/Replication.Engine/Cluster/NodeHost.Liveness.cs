using System.Collections.Concurrent;
using Replication.Engine.Raft;
using Replication.Engine.Transport;

namespace Replication.Engine.Cluster;

/// <summary>
/// Node liveness for quiescent groups (RaftNode.Quiesce.cs): an idle group's leader stops heartbeating, and what tells its
/// followers that the leader is still there is one signal per peer node, not per group, every <see cref="LivenessTicks"/>
/// ticks (<see cref="MessageType.Liveness"/>; 130 ms with the default timing, against a heartbeat every 30 ms per group and
/// follower). Sent from the loop thread when its ticks come due, so a node whose loop is stuck or frozen (a full GC, SIGSTOP,
/// a drill's freeze) falls silent like a dead one and its followers campaign as they do today. Sent to every node that
/// shares a group with this one; a received signal is handed to the cores of the quiesced groups, for each member the
/// sender hosts (<see cref="RaftNode.HeardFrom"/>: the followers' election timers restart when it comes from their
/// leader's node, and a quiesced leader counts the member active for check-quorum). It never renews a lease.
/// A received signal does not wake the loop (<see cref="QuietWait"/>). Each signal also carries a stamp of the sender's
/// status (<see cref="StatusStamp"/>), so a peer's status loop polls it only when its status moved or it fell silent (ClusterNode.Status.cs).
/// Loop thread only, but the thread-safe members marked so and <see cref="NoteLivenessArrived"/>.
/// </summary>
internal sealed partial class NodeHost
{
    /// <summary>Ticks since this node last sent its liveness signal.</summary>
    private long _livenessPhase;

    /// <summary>
    /// A third of the election timeout (at least a heartbeat): a follower hears its leader's node three or more times before
    /// it could time out, so only a signal more than 270 ms late (the default timing: 400 ms less one period) lets one campaign, and
    /// its pre-vote then fails while the group's other followers still hear that node (RaftNode: in lease). Each signal costs
    /// a wake of the sender's loop and of the receiver's read thread, most of an idle node's CPU: a fifth of the timeout
    /// (80 ms) held an idle node at 1.1-1.3% of a core (bench finding, README "Benchmarks").
    /// </summary>
    private int LivenessTicks => Math.Max(_options.HeartbeatTicks, _options.ElectionTicks / 3);

    /// <summary>After ticks came due (<paramref name="due"/> of them): sends the liveness signal when its period has passed.</summary>
    private void MaybeSendLiveness(long due)
    {
        if (!_options.Quiesce || _transport is null) return;
        _livenessPhase += due;
        if (_livenessPhase < LivenessTicks) return;
        _livenessPhase = 0;
        var peers = _livenessPeers;
        peers.Clear();
        foreach (var g in _groups.Values)
        {
            foreach (int member in g.Core.Voters) peers.Add(ReplicaIds.NodeOf(member));
            foreach (int member in g.Core.Learners) peers.Add(ReplicaIds.NodeOf(member));
        }
        peers.Remove(Id);
        long stamp = StatusStamp();
        if (stamp != _sentStamp)
        {
            _sentStamp = stamp;
            SignalPeerMovement(); // this node's own status moved: the status loop samples it (ClusterNode.Status.cs)
        }
        foreach (int peer in peers) _transport.Send(new RaftMessage { Type = MessageType.Liveness, From = Id, To = peer, Context = stamp });
        ReportSilentPeers();
    }

    /// <summary>The peer nodes of the signal being sent (loop thread only; reused).</summary>
    private readonly HashSet<int> _livenessPeers = new();

    /// <summary>The stamp of this node's last liveness signal (loop thread only).</summary>
    private long _sentStamp;

    /// <summary>
    /// A hash of what a peer's status report of this node says about its groups and its disk (term, role, leader, commit and
    /// applied index, membership of each group; whether the disk is full). Carried by each liveness signal (in
    /// <see cref="RaftMessage.Context"/>), so a peer knows whether the report it holds of this node is still current
    /// without asking for a new one (<see cref="PeerReportConfirmedAt"/>). Equal stamps with different statuses are possible
    /// (a hash), which the status loop's slowest poll period bounds (ClusterNode.Status.cs).
    /// </summary>
    private long StatusStamp()
    {
        var hash = new HashCode();
        hash.Add(IsDiskFull);
        foreach (var st in _status.Values)
        {
            hash.Add(st.Shard);
            hash.Add(st.Role);
            hash.Add(st.Term);
            hash.Add(st.Leader);
            hash.Add(st.Committed);
            hash.Add(st.Applied);
            hash.Add(st.SnapshotIndex);
            foreach (int v in st.Voters) hash.Add(v);
            hash.Add(-1);
            foreach (int l in st.Learners) hash.Add(l);
        }
        return hash.ToHashCode();
    }

    /// <summary>The last liveness signal of each peer node: when it arrived (loop clock) and the stamp it carried. Written by
    /// the receive threads, read by anyone.</summary>
    private readonly ConcurrentDictionary<int, (TimeSpan At, long Stamp)> _peerSignals = new();

    /// <summary>Per peer node: the arrival time of the signal after which it was reported silent (loop thread only).</summary>
    private readonly Dictionary<int, TimeSpan> _reportedSilent = new();

    /// <summary>A peer whose signals stopped for this long is reported (<see cref="WaitForPeerMovementAsync"/>): two periods
    /// (260 ms with the default timing), so a killed node is polled, and shown unreachable, a quarter to four tenths of a second
    /// after its last signal, and one signal a period late is no silence.</summary>
    private TimeSpan PeerSilentAfter => _options.TickInterval * (2 * LivenessTicks);

    /// <summary>Reports, once per silence, each peer whose liveness signals stopped for <see cref="PeerSilentAfter"/>.</summary>
    private void ReportSilentPeers()
    {
        var now = _clock.Elapsed;
        foreach (var (node, signal) in _peerSignals)
        {
            if (now - signal.At < PeerSilentAfter || (_reportedSilent.TryGetValue(node, out var at) && at == signal.At)) continue;
            _reportedSilent[node] = signal.At;
            SignalPeerMovement();
        }
    }

    private TaskCompletionSource _peerMoved = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private void SignalPeerMovement() =>
        Interlocked.Exchange(ref _peerMoved, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <summary>
    /// Completes when what the status loop samples may have moved without its asking (ClusterNode.Status.cs): a peer's
    /// liveness signal carried a new stamp, a peer's signals stopped for <see cref="PeerSilentAfter"/>, or this node's own
    /// stamp changed; or after <paramref name="timeout"/>, or when <paramref name="cancellationToken"/> is cancelled; never
    /// faults. Thread-safe.
    /// </summary>
    public Task WaitForPeerMovementAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
        Volatile.Read(ref _peerMoved).Task.WaitAsync(timeout, cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);

    /// <summary>
    /// When the report of <paramref name="node"/> that was asked for while its liveness signals carried
    /// <paramref name="stamp"/> was last confirmed current: the arrival of that node's latest signal, if it carries the same
    /// stamp; else null. Thread-safe.
    /// </summary>
    public DateTimeOffset? PeerReportConfirmedAt(int node, long stamp)
    {
        if (!_peerSignals.TryGetValue(node, out var signal) || signal.Stamp != stamp) return null;
        return DateTimeOffset.UtcNow - (_clock.Elapsed - signal.At);
    }

    /// <summary>The stamp of <paramref name="node"/>'s latest liveness signal, if one arrived within <see cref="PeerSilentAfter"/>. Thread-safe.</summary>
    public long? PeerStamp(int node) =>
        _peerSignals.TryGetValue(node, out var signal) && _clock.Elapsed - signal.At < PeerSilentAfter ? signal.Stamp : null;

    /// <summary>
    /// How much longer than the next tick the loop may sleep: when every group hosted here is quiesced, until this node's
    /// next liveness signal is due or the earliest tick at which a follower's election timeout could fire (at least
    /// ElectionTicks after its last contact), whichever is sooner, and at most ElectionTicks/2 ticks (so DeliverDueTicks still delivers them all through Tick: timers and
    /// the lease clock see every one of them); otherwise none. Nothing happens per tick meanwhile but timers counting up,
    /// and the ticks are not lost, only delivered together, each liveness signal received between the ticks it arrived
    /// between (<see cref="TakeArrivedLiveness"/>): the cores see what they would have seen had the loop woken for every
    /// tick and every signal, and a follower whose leader's node went silent campaigns on time. A received signal does not
    /// wake the loop; anything else that arrives (a message, a request) does, at once, as before. A quiesced leader's
    /// check-quorum round is not waited for: it comes at the next wake, at most a liveness period late, which only delays a
    /// step-down (the lease does not rest on it, RaftNode.Quiesce.cs); waking for each led group's own round made a node
    /// leading many groups wake at each of their phases (64 shards: the loop's CPU went up, bench finding).
    /// </summary>
    private TimeSpan QuietWait()
    {
        if (!_options.Quiesce || _groups.Count == 0) return TimeSpan.Zero;
        long ticks = Math.Min(LivenessTicks - _livenessPhase, _options.ElectionTicks / 2);
        foreach (var g in _groups.Values)
        {
            if (!g.Core.Quiesced) return TimeSpan.Zero;
            if (g.Core.Role != RaftRole.Leader) ticks = Math.Min(ticks, _options.ElectionTicks - g.Core.ElectionElapsed);
        }
        return _options.TickInterval * Math.Max(0, ticks - 1);
    }

    /// <summary>Liveness signals received and not yet given to the cores: the sending node and when it arrived (loop clock).</summary>
    private readonly ConcurrentQueue<(int Node, TimeSpan At)> _arrivedLiveness = new();
    private readonly List<(int Node, TimeSpan At)> _takenLiveness = new(); // loop thread only

    /// <summary>A peer node's liveness signal, on the transport's receive thread: noted with its arrival time, the loop not woken.</summary>
    private void NoteLivenessArrived(RaftMessage m)
    {
        var at = _clock.Elapsed;
        _arrivedLiveness.Enqueue((m.From, at));
        var before = _peerSignals.TryGetValue(m.From, out var last) ? last.Stamp : (long?)null;
        _peerSignals[m.From] = (at, m.Context);
        if (before != m.Context) SignalPeerMovement();
    }

    /// <summary>The signals received since the last call, in arrival order (loop thread; the list is reused).</summary>
    private List<(int Node, TimeSpan At)> TakeArrivedLiveness()
    {
        _takenLiveness.Clear();
        while (_arrivedLiveness.TryDequeue(out var signal)) _takenLiveness.Add(signal);
        _takenLiveness.Sort((a, b) => a.At.CompareTo(b.At)); // two receive threads enqueue concurrently
        return _takenLiveness;
    }

    /// <summary>A peer node's liveness signal: fed to every quiesced group for the members that node hosts.</summary>
    private void OnLiveness(int node)
    {
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
