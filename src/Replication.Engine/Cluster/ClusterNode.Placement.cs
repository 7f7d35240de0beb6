using Replication.Engine.Transport;
using System.Diagnostics;
using Replication.Engine.Raft;
using Replication.Engine.Ring;

namespace Replication.Engine.Cluster;

/// <summary>
/// The control loop's part in the ring (ClusterNode.Control.cs runs these every pass):
/// <list type="bullet">
/// <item>the shards' memberships as their leaders report them, the input of <see cref="PlacementPolicy"/>;</item>
/// <item>a node drops a shard's data once the placement no longer names it AND the shard's current leader reports it out
/// of the membership (so a member never drops what it may have acknowledged), and a leaving node that was taken out of
/// every group, the metadata group last, stops by itself: it has left the cluster;</item>
/// <item>leadership balancing (<see cref="LeaderBalancer"/>): each node hands over leaderships the plan moves away from
/// it, by Raft leader transfer (the target is caught up first). Every node plans from the same reports, and only a
/// shard's own leader acts, at most once per <see cref="TransferCooldown"/> per shard, and only from a view that held still for
/// <see cref="BalanceSettle"/>, so views that differ for a moment cannot make nodes undo each other's transfers.</item>
/// </list>
/// </summary>
public sealed partial class ClusterNode
{
    private static readonly TimeSpan BalanceInterval = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan TransferCooldown = TimeSpan.FromSeconds(3);
    /// <summary>How long the leaders and nodes this node sees must stay as they are before it balances (six status periods).</summary>
    private static readonly TimeSpan BalanceSettle = TimeSpan.FromMilliseconds(1500);
    private long _nextBalance;
    private string _balanceView = "";
    private long _balanceViewSince;
    private readonly Dictionary<int, long> _transferredAt = new();
    private int _leftCluster;
    private bool _sawSelfLeaving;

    /// <summary>Each shard's voters and learners as its current leader reports them (this node's own status for shards it
    /// leads); a shard without a known leader is missing.</summary>
    private IReadOnlyDictionary<int, ShardPlacement> CurrentMemberships()
    {
        var result = new Dictionary<int, ShardPlacement>();
        foreach (var s in GetShards())
        {
            if (s.Leader == 0 || s.Voters.Count == 0) continue;
            try { result[s.Id] = new ShardPlacement(s.Id, s.Voters, s.Learners); }
            catch (ArgumentException) { } // a report caught mid-change (a node listed twice): the next pass sees a clean one
        }
        return result;
    }

    /// <summary>Drops the data of shards this node left (see the class summary), and stops the node once it left the cluster.</summary>
    private async Task DropLeftGroupsAsync(ClusterMetadata metadata)
    {
        if (metadata.Cluster is null) return;
        var map = metadata.MapOr(ShardCount);
        bool learner = metadata.DesiredLearners().Contains(NodeId);
        foreach (var (group, st) in _host.Status)
        {
            if (group == ClusterMetadata.MetadataGroup || st.Role == RaftRole.Leader || !map.Contains(group)) continue;
            // Superseded: the metadata has named this node anew since this replica was created (it moved away and back):
            // the group is to take a new replica with a new id, so this one goes like one that moved away. Member ids
            // only grow, so a metadata replica that lags (a higher id hosted than it names) supersedes nothing.
            bool superseded = st.Member < metadata.MemberIdOf(group, NodeId);
            if ((learner || metadata.ReplicasOf(group).Contains(NodeId)) && !superseded) continue;
            if (!RemovedFrom(group, st.Member)) continue;
            await _host.ReplaceGroupDataAsync(group, importFrom: null).ConfigureAwait(false);
            Log($"node {NodeId}: shard {group} {(superseded ? "placed here anew" : "moved away")}: its replica here ({ReplicaIds.IncarnationOf(st.Member)}.{NodeId}) is dropped{(superseded ? "; a new one follows" : "")}");
        }
        // Left the cluster: it was marked leaving, it holds no shard, and the metadata group's current leader reports it out of
        // the group (its own replica may already show it deregistered — it was the metadata leader — but it must stay until
        // the group's removal of it has committed: a leader that removes itself hands over first, Raft thesis 4.2.2).
        bool registered = metadata.Nodes.TryGetValue(NodeId, out var self);
        if (registered && self!.Leaving) _sawSelfLeaving = true;
        if (_sawSelfLeaving && (!registered || self!.Leaving)
            && _host.Status.Keys.All(g => g == ClusterMetadata.MetadataGroup)
            && RemovedFrom(ClusterMetadata.MetadataGroup)
            && Interlocked.Exchange(ref _leftCluster, 1) == 0)
        {
            Log($"node {NodeId}: removed from the cluster (it holds no replica and is deregistered): stopping");
            _ = Task.Run(() => StopAsync(kill: false));
        }
    }

    /// <summary>True once this node was removed from the cluster (Remove-ReplicationNode) and stopped by itself.</summary>
    public bool LeftCluster => Volatile.Read(ref _leftCluster) == 1;

    /// <summary>Hands over the leaderships the balancer moves away from this node (see the class summary).</summary>
    private async Task BalanceLeadersAsync(ClusterMetadata metadata)
    {
        if (metadata.Cluster is not { } info || !info.SettingsOrDefault.BalanceLeaders) return;
        long now = Stopwatch.GetTimestamp();
        if (now < _nextBalance) return;
        _nextBalance = now + (long)(BalanceInterval.TotalSeconds * Stopwatch.Frequency);
        if (!_host.Status.Any(g => g.Key != ClusterMetadata.MetadataGroup && g.Value.Role == RaftRole.Leader)) return;
        // No transfers while a disk is full: the target must persist a new term to take over, and a full disk cannot, so
        // the transfer never completes and the transferring leader holds reads meanwhile. (Bug fixed: with every disk full,
        // node 1 handed shard 0 to node 2 every 3.4 s and no linearizable read was answered for 20 s; DiskFullTests.)
        if (_host.DiskFull is not null || FreshReports().Any(r => r.Report.Nodes.Any(n => n.Id == r.Node && n.DiskFull))) return;
        var shards = GetShards();
        var placements = new List<ShardPlacement>();
        foreach (var s in shards.Where(s => s.Voters.Count > 0))
        {
            try { placements.Add(new ShardPlacement(s.Id, s.Voters, s.Learners)); }
            catch (ArgumentException) { }
        }
        var leaders = shards.Where(s => s.Leader != 0).ToDictionary(s => s.Id, s => s.Leader);
        var nodes = PlacementPolicy.RingNodes(metadata, IsRunningNode);
        // Act only on a view that has held still for BalanceSettle: reports lag by a status period, and a view caught while
        // leaderships move (an election, another node's transfer) would undo what just happened (flapping, seen under load).
        string view = string.Join(";", shards.Select(s => $"{s.Id}:{s.Leader}")) + "|" + string.Join(",", nodes.Where(n => n.CanLead).Select(n => n.Id));
        if (view != _balanceView || shards.Any(s => s.Leader == 0))
        {
            _balanceView = view;
            _balanceViewSince = now;
            return;
        }
        if (now - _balanceViewSince < (long)(BalanceSettle.TotalSeconds * Stopwatch.Frequency)) return;
        var plan = LeaderBalancer.Plan(nodes, placements, leaders);
        long cooldown = (long)(TransferCooldown.TotalSeconds * Stopwatch.Frequency);
        foreach (var t in plan)
        {
            if (t.FromNode != NodeId || !_host.Status.TryGetValue(t.Shard, out var st) || st.Role != RaftRole.Leader) continue;
            if (_transferredAt.TryGetValue(t.Shard, out long at) && now - at < cooldown) continue;
            _transferredAt[t.Shard] = now;
            if (await _host.TransferLeadershipAsync(t.Shard, t.ToNode).ConfigureAwait(false))
                Log($"node {NodeId}: shard {t.Shard}: leadership handed to node {t.ToNode} (balancing)");
        }
    }
}
