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
/// <item>leadership balancing (<see cref="LeaderBalancer"/>): one planner, the metadata group's leader, plans every
/// shard's leadership from its one view and asks each shard's leader to hand over by Raft leader transfer (the target is
/// caught up first). It plans only from a view that held still for <see cref="BalanceSettle"/> (two status periods: every
/// node's report is in it), then not again until the hand-overs it asked for show in its view (or
/// <see cref="HandOverWait"/> passed), and moves a shard at most once per <see cref="TransferCooldown"/>. (Every node used
/// to plan on its own and hand over what it led, from a view that had to hold still 1.5 s because two nodes' views could
/// differ for a moment and make them undo each other's transfers: 2.6-13 s to settle, up to 5x the transfers needed.)</item>
/// </list>
/// </summary>
public sealed partial class ClusterNode
{
    private static readonly TimeSpan BalanceInterval = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan TransferCooldown = TimeSpan.FromSeconds(3);
    /// <summary>How long the leaders, voters and nodes the planner sees must stay as they are before it balances: two status
    /// periods (<see cref="StatusInterval"/>), so every node's report since the last change is in it.</summary>
    private static readonly TimeSpan BalanceSettle = TimeSpan.FromMilliseconds(500);
    /// <summary>How long the planner waits for the hand-overs it asked for to show in its view.</summary>
    private static readonly TimeSpan HandOverWait = TimeSpan.FromSeconds(3);
    /// <summary>How long the planner holds its balance while replicas move (see <see cref="BalanceLeaders"/>).</summary>
    private static readonly TimeSpan MovingHold = TimeSpan.FromSeconds(30);
    private long _nextBalance;
    private long _movingSince;
    private long _handOversUntil;
    private Task<IReadOnlyList<LeaderTransfer>> _handingOver = NoHandOvers;
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
            var dropStarted = System.Diagnostics.Stopwatch.GetTimestamp();
            await _host.ReplaceGroupDataAsync(group, importFrom: null).ConfigureAwait(false);
            Log($"node {NodeId}: shard {group} {(superseded ? "placed here anew" : "moved away")}: its replica here ({ReplicaIds.IncarnationOf(st.Member)}.{NodeId}) is dropped{(superseded ? "; a new one follows" : "")} in {System.Diagnostics.Stopwatch.GetElapsedTime(dropStarted).TotalMilliseconds:0} ms");
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

    /// <summary>
    /// The metadata group's leader plans the leaderships of every shard from its one view (see the class summary) and asks
    /// each transfer of the shard's leader (<see cref="HandOverHereAsync"/>); every other node only carries out what it
    /// is asked.
    /// </summary>
    private void BalanceLeaders(ClusterMetadata metadata)
    {
        if (metadata.Cluster is not { } info || !info.SettingsOrDefault.BalanceLeaders) return;
        if (!_host.Status.TryGetValue(ClusterMetadata.MetadataGroup, out var meta) || meta.Role != RaftRole.Leader)
        {
            _balanceView = ""; // a planner that takes over starts from a view of its own
            return;
        }
        long now = Stopwatch.GetTimestamp();
        if (now < _nextBalance || !_handingOver.IsCompleted) return;
        _nextBalance = now + Ticks(BalanceInterval);
        // No transfers while a disk is full: the target must persist a new term to take over, and a full disk cannot, so
        // the transfer never completes and the transferring leader holds reads meanwhile. (Bug fixed: with every disk full,
        // node 1 handed shard 0 to node 2 every 3.4 s and no linearizable read was answered for 20 s; DiskFullTests.)
        if (_host.DiskFull is not null || FreshReports().Any(r => r.Report.Nodes.Any(n => n.Id == r.Node && n.DiskFull))) return;
        var shards = GetShards();
        var leaders = shards.Where(s => s.Leader != 0).ToDictionary(s => s.Id, s => s.Leader);
        // The hand-overs asked for last time must show first (reports lag by up to a status period): a plan from a view
        // without them would move those shards again.
        if (_handingOver.Result.Count > 0 && now < _handOversUntil && _handingOver.Result.Any(t => leaders.GetValueOrDefault(t.Shard) == t.FromNode)) return;
        _handingOver = NoHandOvers;
        var nodes = PlacementPolicy.RingNodes(metadata, IsRunningNode);
        // Act only on a view that has held still for BalanceSettle: a view caught while leaderships or memberships move (an
        // election, a move) would be undone by the next one (flapping, seen under load when every node planned on its own).
        string view = string.Join(";", shards.Select(s => $"{s.Id}:{s.Leader}:{string.Join(",", s.Voters.Order())}"))
            + "|" + string.Join(",", nodes.Where(n => n.CanLead).Select(n => n.Id));
        if (view != _balanceView || shards.Any(s => s.Leader == 0))
        {
            _balanceView = view;
            _balanceViewSince = now;
            return;
        }
        if (now - _balanceViewSince < Ticks(BalanceSettle)) return;
        // Not a shard with a learner other than a learner-only node's: its leader is copying it to a new replica, and a leader
        // change abandons the copy (the ring bench's leave saw a 33 MB copy restarted five times so); the next plan after
        // the move takes it.
        var followers = metadata.DesiredLearners();
        var copying = shards.Where(s => s.Learners.Any(l => !followers.Contains(l))).Select(s => s.Id).ToHashSet();
        // While the ring still moves replicas (a join, a leave, a pin), every move changes a shard's voters and may change
        // its leader (a leader that removes itself hands over), so a plan made between two moves is undone by the next:
        // the ring bench's join made 8-9 transfers where 2 would do, and moved shards twice. Until the moves are done only
        // leaderships on nodes that may not lead move; the balance is planned once, from the placement the moves reach,
        // or after MovingHold of moves, so a long migration still has its leaders balanced now and then.
        bool moving = copying.Count > 0 || RingMoving(metadata, shards);
        if (!moving) _movingSince = 0;
        else if (_movingSince == 0) _movingSince = now;
        bool hold = moving && now - _movingSince < Ticks(MovingHold);
        var mayLead = nodes.Where(n => n.CanLead).Select(n => n.Id).ToHashSet();
        // A voter still catching up (a restarted node taking a snapshot) cannot take a leadership now (CaughtUpReplicas): it
        // is planned as a learner of that shard, so the plan hands the node a shard it is caught up in instead of one that
        // waits for it. Planned with every voter, the first shard of the most loaded node was picked, and a restarted node
        // waited for its 33 MB snapshot of that shard while its other replicas were ready (ring bench: restarts settled in
        // 3.8-6.0 s, 1.2-2 s of it the snapshot). A learner is never a transfer's target (LeaderBalancer), so no plan
        // hands a shard to a replica still catching up.
        var caughtUp = CaughtUpReplicas();
        var placements = new List<ShardPlacement>();
        foreach (var s in shards.Where(s => s.Voters.Count > 0))
        {
            var behind = s.Voters.Where(v => v != s.Leader && !caughtUp(s.Id, v)).ToList();
            try { placements.Add(new ShardPlacement(s.Id, s.Voters.Except(behind).ToList(), s.Learners.Concat(behind).ToList())); }
            catch (ArgumentException) { }
        }
        var plan = LeaderBalancer.Plan(nodes, placements, leaders)
            .Where(t => !copying.Contains(t.Shard) && (!_transferredAt.TryGetValue(t.Shard, out long at) || now - at >= Ticks(TransferCooldown))
                && (!hold || !mayLead.Contains(t.FromNode))).ToArray();
        if (plan.Length == 0) return;
        if (moving && !hold) _movingSince = now; // the next balance during the same moves waits MovingHold again
        foreach (var t in plan) _transferredAt[t.Shard] = now;
        _handOversUntil = now + Ticks(HandOverWait);
        _balanceView = ""; // the next plan waits for a view that held still after these
        // The plan's own line: with the hand-overs' "handed to" lines it splits a settle time into planning and transferring.
        Log($"node {NodeId}: balancing: asking {string.Join(", ", plan.Select(t => $"shard {t.Shard} from node {t.FromNode} to node {t.ToNode}"))}");
        _handingOver = HandOverAllAsync(plan);
    }

    /// <summary>Entries a transfer target's replica may lag by, as it reports itself, and still be handed a leadership.</summary>
    private const long TransferLagLimit = 100;

    /// <summary>
    /// Whether a node's replica of a shard (shard, node) is caught up as the node's own last fresh report says (ShardLag:
    /// the best commit index it knows less its applied index), so it can take over at once; read from the reports once
    /// per plan. A node just restarted that is still taking a snapshot cannot: a transfer to it times out after an
    /// election timeout, during which the shard's leader refuses writes, and the planner asked again every few seconds
    /// (the stream helper's ring bench: a restart settled in 2.9-6.0 s). Such a replica plans as a learner of its shard.
    /// </summary>
    private Func<int, int, bool> CaughtUpReplicas()
    {
        var lag = new Dictionary<(int Shard, int Node), long?>();
        foreach (var r in FreshReports())
            if (r.Node != NodeId)
                foreach (var view in r.Report.Shards) lag.TryAdd((view.Id, r.Node), view.LagEntries);
        return (shard, node) => node == NodeId
            ? _host.Status.TryGetValue(shard, out var st) && ShardLag(st) <= TransferLagLimit
            : lag.TryGetValue((shard, node), out long? behind) && behind <= TransferLagLimit; // null (not known): not caught up
    }

    /// <summary>True while some shard's voters are not yet those the ring places it on (a move started, or one the ring
    /// wants and has not started: <see cref="PlacementPolicy.Changes"/> starts a bounded number at a time).</summary>
    private static bool RingMoving(ClusterMetadata metadata, IReadOnlyList<ReplicationShard> shards)
    {
        var current = shards.ToDictionary(s => s.Id, s => s.Voters);
        foreach (var desired in PlacementPolicy.Desired(metadata))
        {
            if (!current.TryGetValue(desired.Shard, out var voters)) return true;
            // A node being rebuilt keeps its place in the ring but votes nowhere until it is let back (DesiredVoters).
            var want = metadata.ReplicasOf(desired.Shard);
            if (!want.Order().SequenceEqual(desired.Voters.Order()) || !voters.Order().SequenceEqual(metadata.DesiredVoters(desired.Shard).Order()))
                return true;
        }
        return false;
    }

    private static long Ticks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);

    private static readonly Task<IReadOnlyList<LeaderTransfer>> NoHandOvers = Task.FromResult<IReadOnlyList<LeaderTransfer>>(Array.Empty<LeaderTransfer>());

    /// <summary>Asks each transfer of the node that leads the shard in the plan's view; completes with those it made.</summary>
    private async Task<IReadOnlyList<LeaderTransfer>> HandOverAllAsync(IReadOnlyList<LeaderTransfer> plan)
    {
        var asked = plan.Select(async t =>
        {
            try
            {
                var (answer, _) = await CallAdminAsync<HandOverAnswer>(t.FromNode, AdminOps.LeaderHandOver, new HandOverArgs(t.Shard, t.ToNode),
                    HandOverWait, _background.Token).ConfigureAwait(false);
                return answer.Done ? t : null;
            }
            catch (Exception)
            {
                // Whatever went wrong (the node stopped, is unreachable, timed out, refused): nothing is lost, the next
                // plan, from a fresh view, decides again.
                return null;
            }
        }).ToArray();
        var made = await Task.WhenAll(asked).ConfigureAwait(false);
        return made.OfType<LeaderTransfer>().ToArray();
    }

    /// <summary>
    /// On the node the balancer believes leads <see cref="HandOverArgs.Shard"/>: hands the leadership to the target by
    /// Raft leader transfer, if this node still leads it and the target is a running voter that is not suspended. A plan
    /// made from a view that has since changed (another leader now) moves nothing.
    /// </summary>
    private async Task<HandOverAnswer> HandOverHereAsync(HandOverArgs args)
    {
        if (!_host.Status.TryGetValue(args.Shard, out var st) || st.Role != RaftRole.Leader || !st.Voters.Contains(args.Target)
            || !PeerIsRunning(args.Target) || RegistryEntry(args.Target) is { Suspended: true })
            return new HandOverAnswer(false);
        bool done = await _host.TransferLeadershipAsync(args.Shard, args.Target).ConfigureAwait(false);
        if (done) Log($"node {NodeId}: shard {args.Shard}: leadership handed to node {args.Target} (balancing)");
        return new HandOverAnswer(done);
    }
}
