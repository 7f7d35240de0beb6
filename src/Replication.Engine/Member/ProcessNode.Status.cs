using System.Collections.Concurrent;
using Replication.Engine.Client;
using Replication.Engine.Cluster;
using Replication.Engine.Raft;

namespace Replication.Engine.Member;

/// <summary>
/// Status: this node reports itself from its own loop's published snapshots; other nodes report
/// themselves when asked (a forwarded Status request answers with the receiver's own view only). A
/// background task asks every peer every <see cref="StatusInterval"/>; a node whose last report is
/// older than <see cref="StaleAfter"/> shows as Unreachable. A shard's leader is the one reported in
/// the highest term. The reports also feed the router's leader guesses for shards this node does not host.
/// </summary>
public sealed partial class ProcessNode
{
    private static readonly TimeSpan StatusInterval = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan StaleAfter = TimeSpan.FromSeconds(3);
    private readonly ConcurrentDictionary<int, (DateTimeOffset At, ClusterStatus Report)> _peerReports = new();
    /// <summary>Nodes this node stopped on request, and when: shown as Stopped (not Unreachable) until they report again.</summary>
    private readonly ConcurrentDictionary<int, DateTimeOffset> _stoppedOnRequest = new();

    private async Task StatusLoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            var peers = _metadata.Nodes.Keys.Where(id => id != NodeId).ToArray();
            await Task.WhenAll(peers.Select(id => PollPeerAsync(id, ct))).ConfigureAwait(false);
            try { await Task.Delay(StatusInterval, ct).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
        }
    }

    private async Task PollPeerAsync(int id, CancellationToken ct)
    {
        try
        {
            var response = (StatusResponse)await _peers.SendAsync(id, cid => new ForwardedRequest(cid, new StatusRequest(cid)), TimeSpan.FromSeconds(1), new SentFlag<bool>(false), ct).ConfigureAwait(false);
            _peerReports[id] = (DateTimeOffset.UtcNow, response.Status);
            _stoppedOnRequest.TryRemove(id, out _);
        }
        catch (Exception e) when (e is PeerUnreachableException or ConnectionLostException or TimeoutException or ReplicationException or InvalidCastException
            || (e is OperationCanceledException && ct.IsCancellationRequested) || e is ObjectDisposedException)
        {
            // No report this round; the node turns Unreachable once its last report is stale.
        }
    }

    private bool PeerIsRunning(int id) => _peerReports.TryGetValue(id, out var r) && DateTimeOffset.UtcNow - r.At < StaleAfter;

    /// <summary>The leader of <paramref name="group"/> according to fresh peer reports (highest term wins); 0 when none.</summary>
    private int LeaderFromReports(int group)
    {
        int leader = 0;
        long term = -1;
        foreach (var (id, (at, report)) in _peerReports)
        {
            if (DateTimeOffset.UtcNow - at >= StaleAfter) continue;
            var shard = report.Shards.FirstOrDefault(s => s.Id == group);
            if (shard is null || shard.Leader == 0 || shard.Term <= term) continue;
            leader = shard.Leader;
            term = shard.Term;
        }
        return leader;
    }

    public ClusterStatus GetStatus()
    {
        ThrowIfStopped();
        if (ForwardContext.IsForwarded) // another node asks for this node's own view
            return new ClusterStatus(Id, Name, ShardCount, ReplicationFactor, new[] { Endpoint }, new[] { SelfNode() }, LocalShards(includeMetadata: true));
        var nodes = GetNodes();
        return new ClusterStatus(Id, Name, ShardCount, ReplicationFactor, nodes.Where(n => n.State == NodeState.Running).Select(n => n.Endpoint).ToArray(), nodes, GetShards());
    }

    public IReadOnlyList<ReplicationNode> GetNodes()
    {
        ThrowIfStopped();
        var registry = _metadata.Nodes;
        if (registry.Count == 0) return new[] { SelfNode() };
        return registry.Keys.OrderBy(id => id).Select(BuildNode).ToArray();
    }

    public ReplicationNode GetNode(int id)
    {
        ThrowIfStopped();
        if (id != NodeId && !_metadata.Nodes.ContainsKey(id)) throw new NodeNotFoundException(id) { Target = id };
        return BuildNode(id);
    }

    private ReplicationNode BuildNode(int id)
    {
        if (id == NodeId) return SelfNode();
        string endpoint = EndpointOf(id) ?? "";
        if (_peerReports.TryGetValue(id, out var r) && r.Report.Nodes.FirstOrDefault(n => n.Id == id) is { } reported)
        {
            bool fresh = DateTimeOffset.UtcNow - r.At < StaleAfter;
            return reported with
            {
                Cluster = Name,
                Endpoint = endpoint,
                State = fresh ? NodeState.Running : NodeState.Unreachable,
                StateReason = fresh ? reported.StateReason : $"no status report since {r.At:O}",
            };
        }
        if (_stoppedOnRequest.TryGetValue(id, out var stoppedAt))
            return new ReplicationNode { Cluster = Name, Id = id, Endpoint = endpoint, State = NodeState.Stopped, DataPath = "", StateReason = "stopped on request", StateSince = stoppedAt };
        return new ReplicationNode { Cluster = Name, Id = id, Endpoint = endpoint, State = NodeState.Unreachable, DataPath = "", StateReason = "no status report yet" };
    }

    private ReplicationNode SelfNode()
    {
        var status = _host.Status.Values.Where(s => s.Shard != ClusterMetadata.MetadataGroup).ToArray();
        var latest = status.OrderByDescending(s => s.StateSince).FirstOrDefault();
        long size = 0;
        try { size = Directory.Exists(_options.Path) ? new DirectoryInfo(_options.Path).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length) : 0; }
        catch (IOException) { /* a file vanished while we looked (WAL checkpoint); size is informational */ }
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
            LagEntries = status.Sum(s => Math.Max(0, s.Committed - s.Applied)),
            LastContact = status.Any(s => s.LastContact is null) ? null : status.Select(s => s.LastContact).Min(),
            DataPath = _options.Path,
            SizeBytes = size,
            StateReason = latest is null ? "running" : $"shard {latest.Shard}: {latest.StateReason}",
            StateSince = latest?.StateSince,
        };
    }

    /// <summary>This node's view of the groups it hosts.</summary>
    private ReplicationShard[] LocalShards(bool includeMetadata)
    {
        var shards = new List<ReplicationShard>();
        foreach (var st in _host.Status.Values.OrderBy(s => s.Shard))
        {
            if (st.Shard == ClusterMetadata.MetadataGroup && !includeMetadata) continue;
            long keys = 0;
            try { keys = st.Shard == ClusterMetadata.MetadataGroup ? 0 : _host.Store.Count(st.Shard); }
            catch (RetryableException) { /* stopping */ }
            shards.Add(new ReplicationShard
            {
                Cluster = Name,
                Id = st.Shard,
                Leader = st.Role == RaftRole.Leader ? NodeId : st.Leader,
                Voters = st.Voters,
                Learners = st.Learners,
                Term = st.Term,
                CommitIndex = st.Committed,
                KeyCount = keys,
            });
        }
        return shards.ToArray();
    }

    private IReadOnlyList<ReplicationShard> LocalShards() => LocalShards(includeMetadata: false);

    public IReadOnlyList<ReplicationShard> GetShards()
    {
        ThrowIfStopped();
        var views = new List<ReplicationShard>(LocalShards(includeMetadata: false));
        foreach (var (at, report) in _peerReports.Values)
            if (DateTimeOffset.UtcNow - at < StaleAfter) views.AddRange(report.Shards);
        var result = new ReplicationShard[ShardCount];
        for (int s = 0; s < ShardCount; s++)
        {
            var best = views.Where(v => v.Id == s).OrderByDescending(v => v.Term).ThenByDescending(v => v.Leader != 0).ThenByDescending(v => v.CommitIndex).FirstOrDefault();
            result[s] = best is null
                ? new ReplicationShard { Cluster = Name, Id = s, Voters = _metadata.ReplicasOf(s) }
                : best with { Cluster = Name };
        }
        return result;
    }
}
