using System.Collections.Concurrent;
using System.Diagnostics;
using Replication.Engine.Client;
using Replication.Engine.Raft;

namespace Replication.Engine.Cluster;

/// <summary>
/// Status, as true as this node can know it. This node reports itself from its own loop's published
/// snapshots; every other node is asked for its own view every <see cref="StatusInterval"/> (a forwarded
/// Status request answers with the receiver's view only). A peer whose poll fails or goes unanswered for
/// <see cref="PollTimeout"/> is Unreachable at once — so a killed node shows Unreachable within one status
/// period (its connection is refused), a frozen one within a period plus the poll timeout — and it keeps its
/// last known term, indexes and state time. A shard's leader is the node that reports leading it in the highest
/// term among reachable nodes (0 when none does), so leaderships add up to at most the shard count, and a
/// node's ShardsLed counts exactly the shards shown led by it; a shard without a leader keeps its last known
/// term. The reports also feed the router's leader guesses and the rebuild protocol.
/// </summary>
public sealed partial class ClusterNode
{
    internal static readonly TimeSpan StatusInterval = TimeSpan.FromMilliseconds(250);
    /// <summary>
    /// The poll period of a quiet node: nothing it sees has moved for <see cref="QuietAfter"/> (no commit, term, leader or
    /// membership of its own groups or in its peers' reports, no peer turning reachable or unreachable). Each poll wakes the
    /// thread pool on both ends several times (its workers spin before they sleep): four polls a second per peer were most
    /// of an idle node's thread-pool work (bench finding). Reports stay well within <see cref="StaleAfter"/>.
    /// </summary>
    internal static readonly TimeSpan QuietStatusInterval = TimeSpan.FromSeconds(1);
    /// <summary>
    /// The longest a quiet node goes without polling a peer whose liveness signals (NodeHost.Liveness.cs) keep confirming
    /// the report it holds: each signal carries a stamp of the sender's status, so the report is known current as of the
    /// latest signal, and the peer is polled at once when its stamp changes or its signals stop. This period bounds what the
    /// stamp does not cover (data size, free space, its view of other nodes) and a stamp that collides.
    /// </summary>
    internal static readonly TimeSpan ConfirmedPollInterval = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan QuietAfter = TimeSpan.FromSeconds(3);
    internal static readonly TimeSpan PollTimeout = TimeSpan.FromMilliseconds(500);
    /// <summary>A report older than this is not used for routing or rebuild decisions.</summary>
    private static readonly TimeSpan StaleAfter = TimeSpan.FromSeconds(2);
    private readonly ConcurrentDictionary<int, PeerView> _peerViews = new();
    /// <summary>Nodes this node stopped on request, and when: shown as Stopped (not Unreachable) until they report again.</summary>
    private readonly ConcurrentDictionary<int, DateTimeOffset> _stoppedOnRequest = new();
    /// <summary>Per hosted shard: when this replica was last seen caught up (<see cref="ShardLag"/> 0), sampled each status period.</summary>
    private readonly ConcurrentDictionary<int, DateTimeOffset> _caughtUpAt = new();

    /// <summary>What this node last learned of a peer: its last report, whether the last poll succeeded, since when it fails and
    /// why, and the stamp the peer's liveness signals carried when that report was asked for (null: none heard), which later
    /// signals confirm (<see cref="ReportTime"/>).</summary>
    private sealed record PeerView(DateTimeOffset LastReportAt, ClusterStatus? Report, bool Reachable, DateTimeOffset? FailingSince, string? Failure, long? Stamp = null);

    /// <summary>How current a peer's report is known to be: when it was received, or the arrival of a later liveness signal
    /// of that peer carrying the same stamp (nothing the stamp covers moved since), whichever is later.</summary>
    private DateTimeOffset ReportTime(int id, PeerView view) =>
        view.Stamp is { } stamp && _host.PeerReportConfirmedAt(id, stamp) is { } confirmed && confirmed > view.LastReportAt ? confirmed : view.LastReportAt;

    private async Task StatusLoopAsync(CancellationToken ct)
    {
        int seen = 0;
        long movedAt = Stopwatch.GetTimestamp();
        while (!ct.IsCancellationRequested)
        {
            var peers = _metadata.Nodes.Keys.Concat(_peerHints.Keys).Where(id => id != NodeId).Distinct().ToArray();
            bool wasQuiet = Stopwatch.GetElapsedTime(movedAt) >= QuietAfter;
            await Task.WhenAll(peers.Where(id => !wasQuiet || !ConfirmedByLiveness(id)).Select(id => PollPeerAsync(id, ct))).ConfigureAwait(false);
            foreach (var gone in _peerViews.Keys.Except(peers)) _peerViews.TryRemove(gone, out _);
            // Peers whose disk is full: a leader refuses writes at once when they leave it no quorum that can persist (NodeHost.DiskFull.cs).
            _host.NoteFullPeers(FreshReports().Where(r => r.Report.Nodes.Any(n => n.Id == r.Node && n.DiskFull)).Select(r => r.Node));
            SampleCaughtUp();
            int now = Movement();
            if (now != seen)
            {
                seen = now;
                movedAt = Stopwatch.GetTimestamp();
            }
            bool quiet = Stopwatch.GetElapsedTime(movedAt) >= QuietAfter;
            if (!quiet)
            {
                try { await Task.Delay(StatusInterval, ct).ConfigureAwait(false); }
                catch (OperationCanceledException) { return; }
                continue;
            }
            // Quiet: peers whose liveness signals confirm their reports are not asked again until something moves (a
            // stamp, a silence, this node's own status) or ConfirmedPollInterval passes; the others every QuietStatusInterval.
            var next = peers.All(ConfirmedByLiveness) ? peers.Select(NextConfirmedPoll).DefaultIfEmpty(QuietStatusInterval).Min() : QuietStatusInterval;
            await _host.WaitForPeerMovementAsync(next > QuietStatusInterval ? next : QuietStatusInterval, ct).ConfigureAwait(false);
            if (ct.IsCancellationRequested) return;
        }
    }

    /// <summary>A hash of what tells a busy cluster from a quiet one (see <see cref="QuietStatusInterval"/>): this node's groups
    /// and its peers' last reports of theirs (term, leader, commit and applied index, membership), and which peers answer.</summary>
    private int Movement()
    {
        var hash = new HashCode();
        foreach (var st in _host.Status.Values)
        {
            hash.Add(st.Shard);
            hash.Add(st.Term);
            hash.Add(st.Leader);
            hash.Add(st.Committed);
            hash.Add(st.Applied);
            hash.Add(st.Voters.Count);
            hash.Add(st.Learners.Count);
        }
        foreach (var (id, view) in _peerViews)
        {
            hash.Add(id);
            hash.Add(view.Reachable);
            if (view.Report is null) continue;
            foreach (var shard in view.Report.Shards)
            {
                hash.Add(shard.Id);
                hash.Add(shard.Term);
                hash.Add(shard.Leader);
                hash.Add(shard.CommitIndex);
                hash.Add(shard.AppliedIndex);
                hash.Add(shard.Voters.Count);
                hash.Add(shard.Learners.Count);
            }
        }
        return hash.ToHashCode();
    }

    /// <summary>A quiet node's peer whose report its liveness signals keep confirming, received within <see cref="ConfirmedPollInterval"/>.</summary>
    private bool ConfirmedByLiveness(int id) =>
        _peerViews.TryGetValue(id, out var v) && v.Reachable && v.Stamp is { } stamp && _host.PeerStamp(id) == stamp
        && DateTimeOffset.UtcNow - v.LastReportAt < ConfirmedPollInterval;

    private TimeSpan NextConfirmedPoll(int id) =>
        _peerViews.TryGetValue(id, out var v) ? v.LastReportAt + ConfirmedPollInterval - DateTimeOffset.UtcNow : TimeSpan.Zero;

    private async Task PollPeerAsync(int id, CancellationToken ct)
    {
        async Task<StatusResponse> AskStatusAsync() =>
            (StatusResponse)await _peerClients.SendAsync(id, cid => new ForwardedRequest(cid, new StatusRequest(cid)), PollTimeout, new SentFlag<bool>(false), ct).ConfigureAwait(false);

        var asked = DateTimeOffset.UtcNow;
        long? stamp = _host.PeerStamp(id); // before asking: a report at least as new as this stamp (ReportTime)
        try
        {
            StatusResponse response;
            try
            {
                response = await AskStatusAsync().ConfigureAwait(false);
            }
            catch (ConnectionLostException)
            {
                // The connection died under the request: the peer restarted since it was dialled (its old process or node
                // closed it). The next request dials afresh; asked once more, a running peer is not shown Unreachable until
                // the next poll (bug fixed: right after a node was started, a status read through a sibling said so).
                response = await AskStatusAsync().ConfigureAwait(false);
            }
            // An answer to a poll sent before the node was stopped on request says nothing about it now.
            if (_stoppedOnRequest.TryGetValue(id, out var stoppedAt) && stoppedAt >= asked) return;
            _peerViews[id] = new PeerView(DateTimeOffset.UtcNow, response.Status, true, null, null, stamp);
            NotePeerReachable(id, true, null); // ClusterNode.Events.cs
            _stoppedOnRequest.TryRemove(id, out _);
        }
        catch (Exception e) when (e is PeerUnreachableException or ConnectionLostException or TimeoutException or ReplicationException or InvalidCastException
            || (e is OperationCanceledException && ct.IsCancellationRequested) || e is ObjectDisposedException)
        {
            if (ct.IsCancellationRequested) return;
            string why = e is TimeoutException ? $"no answer within {PollTimeout.TotalMilliseconds:0} ms" : e.Message;
            _peerViews.AddOrUpdate(id,
                _ => new PeerView(DateTimeOffset.MinValue, null, false, DateTimeOffset.UtcNow, why),
                (_, old) => old with { Reachable = false, FailingSince = old.FailingSince ?? DateTimeOffset.UtcNow, Failure = why });
            if (!_stoppedOnRequest.ContainsKey(id)) NotePeerReachable(id, false, why); // ClusterNode.Events.cs
        }
    }

    /// <summary>
    /// For a WriteConcern.All write of <paramref name="group"/> that this node no longer leads (NodeHostOptions.VotersApplied):
    /// whether the node of every voter, as it reports itself, has applied the group through <paramref name="index"/>: this
    /// node's own replica, a peer's report no older than <see cref="StaleAfter"/>. A voter with no such report counts as not
    /// yet (the write waits on, within its timeout). Thread-safe.
    /// </summary>
    private bool VotersApplied(int group, long index, IReadOnlyCollection<int> voters)
    {
        var now = DateTimeOffset.UtcNow;
        foreach (int member in voters)
        {
            int node = Transport.ReplicaIds.NodeOf(member);
            long applied = -1;
            if (node == NodeId) applied = _host.Status.TryGetValue(group, out var st) ? st.Applied : -1;
            else if (_peerViews.TryGetValue(node, out var v) && v.Reachable && v.Report is { } report && now - ReportTime(node, v) < StaleAfter)
                applied = report.Shards.FirstOrDefault(s => s.Id == group)?.AppliedIndex ?? -1;
            if (applied < index) return false;
        }
        return true;
    }

    /// <summary>Reports of reachable peers no older than <see cref="StaleAfter"/>.</summary>
    private IEnumerable<(int Node, ClusterStatus Report)> FreshReports()
    {
        var now = DateTimeOffset.UtcNow;
        foreach (var (id, view) in _peerViews)
            if (view.Reachable && view.Report is { } report && now - ReportTime(id, view) < StaleAfter) yield return (id, report);
    }

    /// <summary>Records that a peer was stopped on request: Stopped now, not at its next failed poll (also told by the
    /// process hosting both nodes, EmbeddedCluster).</summary>
    internal void NoteStopped(int id)
    {
        var now = DateTimeOffset.UtcNow;
        _stoppedOnRequest[id] = now;
        _peerViews.AddOrUpdate(id,
            _ => new PeerView(DateTimeOffset.MinValue, null, false, now, "stopped on request"),
            (_, old) => old with { Reachable = false, FailingSince = now, Failure = "stopped on request" });
    }

    /// <summary>
    /// At a stop on request, once this node's loop has ended and before its connections close: tells every peer that
    /// answered its last poll that this node stopped on request, so each shows it Stopped at once rather than Unreachable
    /// after its next failed poll (the node a client asked to stop is often the one it is connected to, and the client's
    /// next status request goes to another). Best effort, all peers at once, each bounded by <see cref="PollTimeout"/>.
    /// </summary>
    private Task AnnounceStoppedAsync()
    {
        var peers = _peerViews.Where(p => p.Value.Reachable).Select(p => p.Key).Where(id => id != NodeId).ToArray();
        return Task.WhenAll(peers.Select(async id =>
        {
            try { await CallAdminAsync<Empty>(id, AdminOps.NodeStopped, new StoppedArgs(NodeId), PollTimeout, CancellationToken.None).ConfigureAwait(false); }
            catch (Exception e) when (e is PeerUnreachableException or ConnectionLostException or TimeoutException or ReplicationException or ObjectDisposedException or OperationCanceledException)
            {
                // That peer finds out at its next poll (Unreachable then).
            }
        }));
    }

    /// <summary>node.stopped: a peer says it stopped on request (<see cref="AnnounceStoppedAsync"/>).</summary>
    private Empty PeerStopped(int node)
    {
        if (node != NodeId) NoteStopped(node);
        return new Empty();
    }

    /// <summary>Polls a peer now (it was just started by the process hosting both): its status is current from here on.</summary>
    internal Task RefreshPeerAsync(int id)
    {
        _stoppedOnRequest.TryRemove(id, out _);
        return PollPeerAsync(id, _background.Token);
    }

    /// <summary>Polls, now, every peer among <paramref name="ids"/> without a fresh report (a decision about quorums must
    /// not rest on "no report yet", e.g. right after this node started).</summary>
    private Task EnsureFreshAsync(IEnumerable<int> ids, CancellationToken ct)
    {
        var now = DateTimeOffset.UtcNow;
        return Task.WhenAll(ids.Where(id => id != NodeId && !(_peerViews.TryGetValue(id, out var v) && now - ReportTime(id, v) < StatusInterval * 2))
            .Distinct().Select(id => PollPeerAsync(id, ct)));
    }

    private bool PeerIsRunning(int id) => _peerViews.TryGetValue(id, out var v) && v.Reachable && DateTimeOffset.UtcNow - ReportTime(id, v) < StaleAfter;

    /// <summary>This node, or a peer that answered its last poll.</summary>
    private bool IsRunningNode(int id) => id == NodeId || PeerIsRunning(id);

    /// <summary>A peer's last report of itself, however old (null if it never answered).</summary>
    private ReplicationNode? ReportedNode(int id) =>
        _peerViews.TryGetValue(id, out var v) ? v.Report?.Nodes.FirstOrDefault(n => n.Id == id) : null;

    /// <summary>The leader of <paramref name="group"/> according to fresh peer reports (highest term wins); 0 when none.</summary>
    private int LeaderFromReports(int group) => LeaderAndTermFromReports(group).Leader;

    /// <summary>The node that reports leading <paramref name="group"/> in the highest term, and that term ((0, -1): none).</summary>
    private (int Leader, long Term) LeaderAndTermFromReports(int group)
    {
        int leader = 0;
        long term = -1;
        foreach (var (id, report) in FreshReports())
        {
            var shard = report.Shards.FirstOrDefault(s => s.Id == group);
            if (shard is null || shard.Leader != id || shard.Term <= term) continue;
            leader = id;
            term = shard.Term;
        }
        return (leader, term);
    }

    public ClusterStatus GetStatus()
    {
        ThrowIfStopped();
        if (ForwardContext.IsForwarded) // another node asks for this node's own view (and which nodes its metadata marks for rebuild)
        {
            var marks = _metadata.Nodes.Where(n => n.Value.Rebuilding && n.Key != NodeId).Select(n => new ReplicationNode
            {
                Cluster = Name, Id = n.Key, Endpoint = n.Value.Endpoint, State = NodeState.Unreachable, DataPath = "",
                Rebuilding = true, RebuildEpoch = n.Value.RebuildEpoch, RebuildUpload = n.Value.RebuildUpload,
            });
            return new ClusterStatus(Id, Name, ShardCount, ReplicationFactor, new[] { Endpoint }, marks.Prepend(SelfNode()).ToArray(), LocalShards(includeMetadata: true));
        }
        var shards = GetShards();
        var nodes = BuildNodes(shards);
        return new ClusterStatus(Id, Name, ShardCount, ReplicationFactor, nodes.Where(n => n.State == NodeState.Running).Select(n => n.Endpoint).ToArray(), nodes, shards);
    }

    public IReadOnlyList<ReplicationNode> GetNodes()
    {
        ThrowIfStopped();
        return BuildNodes(GetShards());
    }

    public ReplicationNode GetNode(int id)
    {
        ThrowIfStopped();
        if (id != NodeId && !_metadata.Nodes.ContainsKey(id)) throw new NodeNotFoundException(id) { Target = id };
        return BuildNodes(GetShards()).First(n => n.Id == id);
    }

    private ReplicationNode[] BuildNodes(IReadOnlyList<ReplicationShard> shards)
    {
        var registry = _metadata.Nodes;
        var ids = registry.Count == 0 ? new[] { NodeId } : registry.Keys.Append(NodeId).Distinct().Order().ToArray();
        return ids.Select(id => BuildNode(id, shards)).ToArray();
    }

    private ReplicationNode BuildNode(int id, IReadOnlyList<ReplicationShard> shards)
    {
        var entry = _metadata.Nodes.TryGetValue(id, out var e) ? e : null;
        ReplicationNode node;
        if (id == NodeId) node = SelfNode();
        else
        {
            string endpoint = entry?.Endpoint ?? "";
            _peerViews.TryGetValue(id, out var view);
            var reported = view?.Report?.Nodes.FirstOrDefault(n => n.Id == id);
            var known = reported ?? new ReplicationNode { Cluster = Name, Id = id, Endpoint = endpoint, State = NodeState.Unreachable, DataPath = "" };
            if (_stoppedOnRequest.TryGetValue(id, out var stoppedAt) && view is not { Reachable: true })
                node = known with { State = NodeState.Stopped, StateReason = "stopped on request", StateSince = stoppedAt };
            else if (view is { Reachable: true })
                node = known with { State = NodeState.Running };
            else
                node = known with
                {
                    State = NodeState.Unreachable,
                    StateReason = view is null ? "no status report yet" : $"unreachable: {view.Failure}" + (reported is null ? "" : $" (last report {view.LastReportAt:O})"),
                    StateSince = view?.FailingSince ?? known.StateSince,
                };
            node = node with
            {
                Cluster = Name,
                Endpoint = endpoint.Length > 0 ? endpoint : node.Endpoint,
                Clock = reported?.Clock is { } clock && view is not null ? clock + (DateTimeOffset.UtcNow - view.LastReportAt) : null,
            };
        }
        // Leaderships and lag from the cluster's shard view, so every node is judged by the same leaders.
        int led = shards.Count(s => s.Leader == id);
        return node with
        {
            ShardsLed = led,
            Role = entry?.Learner == true ? NodeRole.Learner : NodeRole.Voter,
            Zone = string.IsNullOrEmpty(entry?.Zone) ? null : entry.Zone,
            Rebuilding = entry?.Rebuilding ?? false,
            Suspended = entry?.Suspended ?? false,
            RebuildEpoch = entry?.RebuildEpoch ?? 0,
            RebuildUpload = entry?.RebuildUpload,
        };
    }

    private ReplicationNode SelfNode()
    {
        var status = _host.Status.Values.Where(s => s.Shard != ClusterMetadata.MetadataGroup).ToArray();
        var latest = status.OrderByDescending(s => s.StateSince).FirstOrDefault();
        var (size, free) = DiskUse();
        var lags = status.Select(st => { long? l = ShardLag(st); return (Entries: l, Seconds: ShardLagSeconds(st, l)); }).ToArray();
        return new ReplicationNode
        {
            Cluster = Name,
            Id = NodeId,
            Endpoint = Endpoint,
            State = IsRunning ? NodeState.Running : NodeState.Stopped,
            ShardsLed = status.Count(s => s.Role == RaftRole.Leader),
            ShardsHosted = status.Length,
            Term = status.Length == 0 ? 0 : status.Max(s => s.Term),
            CommitIndex = status.Sum(s => s.Committed),
            AppliedIndex = status.Sum(s => s.Applied),
            LagEntries = !_groupsOpened || lags.Any(l => l.Entries is null) ? null : lags.Sum(l => l.Entries!.Value),
            LagSeconds = lags.Length == 0 ? 0 : lags.Max(l => l.Seconds),
            LastContact = status.Any(s => s.LastContact is null) ? null : status.Select(s => s.LastContact).Min(),
            DataPath = _options.Path,
            SizeBytes = size,
            StoreLayout = _host.Layout,
            DiskFreeBytes = free,
            Clock = DateTimeOffset.UtcNow + ClockSkew,
            DiskFull = _host.DiskFull is not null,
            StateReason = _host.DiskFull is { } full ? "refusing writes: " + full
                : !_groupsOpened ? "starting: opening the shards it holds"
                : latest is null ? "running" : $"shard {latest.Shard}: {latest.StateReason}",
            StateSince = latest?.StateSince,
            RebuiltEpoch = _identity.RebuiltEpoch,
        };
    }

    /// <summary>How long a measure of the data folder's size and the volume's free space is reused (see <see cref="DiskUse"/>).</summary>
    private static readonly TimeSpan DiskUseMaxAge = TimeSpan.FromSeconds(1);
    private volatile DiskUseSample? _diskUse;
    private sealed record DiskUseSample(long SizeBytes, long? FreeBytes, long At);

    /// <summary>
    /// The data folder's size and the volume's free space, measured at most once per <see cref="DiskUseMaxAge"/>: every
    /// status answer (each peer's poll, each client's connect) walked the folder (a stat per file) and asked the volume,
    /// 64 times for 64 clients connecting at once. Both figures are informational; a full disk is detected where writes fail.
    /// </summary>
    private (long SizeBytes, long? FreeBytes) DiskUse()
    {
        long now = Stopwatch.GetTimestamp();
        if (_diskUse is { } last && Stopwatch.GetElapsedTime(last.At, now) < DiskUseMaxAge) return (last.SizeBytes, last.FreeBytes);
        long size = 0;
        try { size = Directory.Exists(_options.Path) ? new DirectoryInfo(_options.Path).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length) : 0; }
        catch (IOException) { /* a file vanished while we looked (WAL checkpoint); size is informational */ }
        var sample = new DiskUseSample(size, FreeBytes(_options.Path), now);
        _diskUse = sample;
        return (sample.SizeBytes, sample.FreeBytes);
    }

    /// <summary>Test hook: added to the wall clock this node reports (a node whose clock is off, for the ClockOffset check).</summary>
    internal TimeSpan ClockSkew { get; set; }

    /// <summary>Bytes available to this process on the volume holding <paramref name="path"/>; null when it cannot be read.</summary>
    private static long? FreeBytes(string path)
    {
        try { return Directory.Exists(path) ? new DriveInfo(System.IO.Path.GetFullPath(path)).AvailableFreeSpace : null; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException) { return null; }
    }

    /// <summary>
    /// How many entries this replica of a shard has not applied yet: the best commit index known for the shard (its own,
    /// or a higher one from the freshest peer reports, which include the leader's) minus its applied index. Null when that
    /// is not known: this node does not lead the shard and no fresh report of a peer that hosts it has arrived. A follower's
    /// own commit index only counts entries it has received, so alone it would show a replica that has heard nothing
    /// (a node just started, before its first poll of its peers answers; one cut off from all of them) as caught up,
    /// and a Stale read with -MaxLag 0 would be served from a copy that misses acknowledged writes.
    /// </summary>
    private long? ShardLag(GroupStatus st)
    {
        long commit = st.Committed;
        bool known = st.Role == RaftRole.Leader;
        foreach (var (_, report) in FreshReports())
            if (report.Shards.FirstOrDefault(s => s.Id == st.Shard) is { } v)
            {
                known = true;
                if (v.CommitIndex > commit) commit = v.CommitIndex;
            }
        return known ? Math.Max(0, commit - st.Applied) : null;
    }

    /// <summary>Notes, for each hosted shard whose replica is caught up now, that it was at this moment.</summary>
    private void SampleCaughtUp()
    {
        var now = DateTimeOffset.UtcNow;
        var hosted = _host.Status;
        foreach (var st in hosted.Values)
            if (ShardLag(st) == 0) _caughtUpAt[st.Shard] = now;
        foreach (int gone in _caughtUpAt.Keys.Where(s => !hosted.ContainsKey(s))) _caughtUpAt.TryRemove(gone, out _); // a replica added again starts afresh
    }

    /// <summary>Seconds since this replica of a shard was last seen caught up; 0 while it is. A replica never seen caught
    /// up (since this node started) counts from when it was first seen.</summary>
    private double ShardLagSeconds(GroupStatus st, long? lag)
    {
        var now = DateTimeOffset.UtcNow;
        if (lag == 0)
        {
            _caughtUpAt[st.Shard] = now;
            return 0;
        }
        return Math.Max(0, (now - _caughtUpAt.GetOrAdd(st.Shard, now)).TotalSeconds);
    }

    private int _countDamageRecorded;

    /// <summary>This node's view of the groups it hosts.</summary>
    private ReplicationShard[] LocalShards(bool includeMetadata)
    {
        var shards = new List<ReplicationShard>();
        foreach (var st in _host.Status.Values.OrderBy(s => s.Shard))
        {
            if (st.Shard == ClusterMetadata.MetadataGroup && !includeMetadata) continue;
            long keys = 0;
            long? lag = ShardLag(st);
            try { keys = st.Shard == ClusterMetadata.MetadataGroup ? 0 : _host.Store.Count(st.Shard); }
            catch (RetryableException) { /* stopping */ }
            catch (Exception e) when (Storage.StorageErrors.IsCorruption(e))
            {
                // A damaged page in the shard's rows must not take the node's status down with it (the node would look
                // unreachable to every peer and client): the count is left out, and the damage recorded once per run.
                if (Interlocked.Exchange(ref _countDamageRecorded, 1) == 0)
                    RecordEvent(ReplicationEventType.StorageCorrupt, $"Node {NodeId} could not count the keys of shard {st.Shard}: {e.Message} (Test-ReplicationCluster -Storage checks every page).", st.Shard);
            }
            shards.Add(new ReplicationShard
            {
                Cluster = Name,
                Id = st.Shard,
                Leader = st.Role == RaftRole.Leader ? NodeId : st.Leader,
                Voters = st.Voters.Order().ToArray(),      // sorted for people and diffs; Raft keeps its own order
                Learners = st.Learners.Order().ToArray(),
                Placement = st.Shard == ClusterMetadata.MetadataGroup ? Array.Empty<int>() : _metadata.ReplicasOf(st.Shard),
                Term = st.Term,
                CommitIndex = st.Committed,
                AppliedIndex = st.Applied,
                KeyCount = keys,
                LagEntries = lag,
                LagSeconds = ShardLagSeconds(st, lag),
                Members = st.CommittedMembers,
            });
        }
        return shards.ToArray();
    }

    private IReadOnlyList<ReplicationShard> LocalShards() => LocalShards(includeMetadata: false);

    public IReadOnlyList<ReplicationShard> GetShards()
    {
        ThrowIfStopped();
        // Every view: this node's, and each peer's last report (fresh ones may name leaders; any may tell a term).
        var views = new List<(int Reporter, bool Fresh, ReplicationShard View)>();
        foreach (var v in LocalShards(includeMetadata: false)) views.Add((NodeId, true, v));
        var now = DateTimeOffset.UtcNow;
        foreach (var (id, peer) in _peerViews)
        {
            if (peer.Report is null) continue;
            bool fresh = peer.Reachable && now - ReportTime(id, peer) < StaleAfter;
            foreach (var v in peer.Report.Shards) if (v.Id != ClusterMetadata.MetadataGroup) views.Add((id, fresh, v));
        }
        var byShard = views.ToLookup(x => x.View.Id); // one pass, not one scan of every view per shard (the control loop calls this)
        var ranges = Map.Ranges.OrderBy(r => r.Shard).ToArray(); // listed by id
        var result = new ReplicationShard[ranges.Length];
        for (int i = 0; i < ranges.Length; i++)
        {
            var range = ranges[i];
            int s = range.Shard;
            var mine = byShard[s].ToArray();
            long lastTerm = mine.Length == 0 ? 0 : mine.Max(x => x.View.Term);
            // The leader is whoever reports leading it, reachable now, in the highest term.
            var leaderView = mine.Where(x => x.Fresh && x.View.Leader == x.Reporter).OrderByDescending(x => x.View.Term).Select(x => x.View).FirstOrDefault();
            var fresh = mine.Where(x => x.Fresh).Select(x => x.View).ToArray();
            var best = leaderView ?? mine.Where(x => x.Fresh).OrderByDescending(x => x.View.Term).ThenByDescending(x => x.View.CommitIndex).Select(x => x.View).FirstOrDefault()
                ?? mine.OrderByDescending(x => x.View.Term).Select(x => x.View).FirstOrDefault();
            result[i] = (best is null
                ? new ReplicationShard { Cluster = Name, Id = s, Voters = Array.Empty<int>() }
                : best with
                {
                    Cluster = Name, Leader = leaderView?.Leader ?? 0, Term = lastTerm,
                    LagEntries = fresh.Length == 0 || fresh.Any(v => v.LagEntries is null) ? null : fresh.Max(v => v.LagEntries),
                    LagSeconds = fresh.Length == 0 ? 0 : fresh.Max(v => v.LagSeconds),
                })
                with { Placement = _metadata.ReplicasOf(s), HashStart = range.Start, HashEnd = range.Last };
        }
        return result;
    }
}
