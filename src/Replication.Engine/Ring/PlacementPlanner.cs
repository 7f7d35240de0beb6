namespace Replication.Engine.Ring;

/// <summary>
/// Turns the difference between the shards' current membership and the ring's placement into Raft
/// membership changes, a bounded number of shards at a time (design: shared/DESIGN.md, "Ring and
/// shards"; after CockroachDB's allocator and TiKV's placement driver: placement as a pure function
/// from cluster state to changes, carried out and retried by a separate executor).
/// Level-triggered and stateless: <see cref="Plan"/> looks only at its arguments, so after a crash,
/// a failed step or a new placement the caller simply calls it again with the current membership and
/// gets the steps that continue from there. Pure and thread-safe.
/// The executor's part: carry out each returned step as one Raft membership change on that shard
/// (promote a learner only once it has caught up), then call <see cref="Plan"/> again.
/// </summary>
public static class PlacementPlanner
{
    /// <summary>
    /// The next membership step of every shard that may take one, at most one per shard.
    /// Safety rules, each checked against the nodes' states (<see cref="RingNode.IsLive"/>):
    /// <list type="bullet">
    /// <item>No step on a shard whose live voters are not a majority of its voters (it has no leader
    /// to commit a change; recovery is an operator's decision), nor on one whose placement has no
    /// voters (no node can hold voters: nothing would receive its data).</item>
    /// <item>No step after which the live voters would not be a majority of the new voters: a
    /// promotion counts the promoted learner as live, a removal of a live voter counts one fewer.</item>
    /// <item>A voter is removed only while the shard has more voters than the placement wants, so a
    /// replacement is always a voter before the replica it replaces goes (never below the desired
    /// count, never below the current count when that is lower).</item>
    /// <item>Data is copied (a learner added) only to a Running node, one learner per shard at a time;
    /// a learner is promoted only while its node is live.</item>
    /// </list>
    /// Concurrency: a shard is in motion while a copy or a membership change is under way, i.e. while
    /// it has a learner that is not a permanent one, or more voters than the placement wants, and it
    /// can take its next step. Shards in motion always get their next step; a new move starts only
    /// while fewer than <paramref name="maxConcurrentMoves"/> shards are in motion. A shard that cannot
    /// proceed (no live majority, its learner's node down, its target down) holds no slot, so it
    /// cannot starve the others; when it resumes, the count may exceed the bound for a while, and no
    /// new move starts until it is back under.
    /// Order: steps of shards in motion first, by shard id; then new moves by urgency (replicas on
    /// removed nodes and shards short of voters first, then down nodes, then draining nodes, then
    /// rebalancing), then shard id. Learners on learner-only nodes that the placement does not want as
    /// voters are permanent (asynchronous replicas) and left alone.
    /// </summary>
    /// <param name="nodes">Every node the cluster knows; a replica on a node not listed counts as on a removed node.</param>
    /// <param name="current">Each shard's current voters and learners.</param>
    /// <param name="desired">Each shard's desired voters (the ring's <see cref="HashRing.Place"/>); must cover every current
    /// shard. A shard only in <paramref name="desired"/> is ignored: its group must exist first (a split creates it
    /// on its parent's replicas).</param>
    /// <param name="maxConcurrentMoves">Most shards in motion at once (1 or more).</param>
    public static IReadOnlyList<ShardMove> Plan(IReadOnlyList<RingNode> nodes, IReadOnlyList<ShardPlacement> current,
        IReadOnlyList<ShardPlacement> desired, int maxConcurrentMoves)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConcurrentMoves, 1);
        var continuing = new List<ShardMove>();
        var starts = new List<(int Urgency, ShardMove Move)>();
        foreach (var w in Analyze(nodes, current, desired))
        {
            if (w.Done || !w.HasQuorum || w.Desired.Count == 0 || w.NextStep() is not { } step) continue;
            if (w.InMotion) continuing.Add(step);
            else starts.Add((w.Urgency, step));
        }
        int budget = Math.Max(0, maxConcurrentMoves - continuing.Count);
        return continuing.Concat(starts.OrderBy(s => s.Urgency).ThenBy(s => s.Move.Shard).Take(budget).Select(s => s.Move)).ToArray();
    }

    /// <summary>
    /// Every replica move between <paramref name="current"/> and <paramref name="desired"/>, by shard id:
    /// the whole plan (Invoke-ReplicationRebalance -WhatIf), where <see cref="Plan"/> gives only the next
    /// steps. Each replica leaving is paired with one arriving (in urgency and ring order); Step is the
    /// membership change that move needs first. Ignores quorum and concurrency: it says what, not when.
    /// </summary>
    public static IReadOnlyList<ShardMove> Moves(IReadOnlyList<RingNode> nodes, IReadOnlyList<ShardPlacement> current,
        IReadOnlyList<ShardPlacement> desired)
    {
        var moves = new List<ShardMove>();
        foreach (var w in Analyze(nodes, current, desired))
        {
            for (int k = 0; k < Math.Max(w.Outgoing.Count, w.Incoming.Count); k++)
            {
                int from = k < w.Outgoing.Count ? w.Outgoing[k] : 0;
                int to = k < w.Incoming.Count ? w.Incoming[k] : 0;
                var step = to == 0 ? ShardMoveStep.RemoveVoter : w.Learners.Contains(to) ? ShardMoveStep.PromoteLearner : ShardMoveStep.AddLearner;
                moves.Add(new ShardMove(w.Shard, from, to, step, w.ReasonFor(from)));
            }
            foreach (int stale in w.Stale) moves.Add(new ShardMove(w.Shard, stale, 0, ShardMoveStep.RemoveLearner, MoveReason.Abandoned));
        }
        return moves;
    }

    /// <summary>
    /// Whether node <paramref name="nodeId"/> can be removed while every shard keeps
    /// <paramref name="replicationFactor"/> voters: true when at least that many other nodes are live
    /// and can hold voters (Running or Suspended, not learner-only; draining nodes are leaving too and
    /// down nodes cannot take a copy). Also counts what removing it at once would put at risk.
    /// Throws <see cref="ArgumentException"/> when the node is not in <paramref name="nodes"/>.
    /// </summary>
    public static NodeRemovalCheck CheckRemoval(IReadOnlyList<RingNode> nodes, IReadOnlyList<ShardPlacement> current,
        int nodeId, int replicationFactor)
    {
        ArgumentNullException.ThrowIfNull(nodes);
        ArgumentNullException.ThrowIfNull(current);
        ArgumentOutOfRangeException.ThrowIfLessThan(replicationFactor, 1);
        var byId = Index(nodes);
        if (!byId.ContainsKey(nodeId)) throw new ArgumentException($"Node {nodeId} is not a member of the cluster.", nameof(nodeId));
        var others = nodes.Where(n => n.Id != nodeId && n.HoldsVoters && n.IsLive).ToList();
        int zonesBefore = nodes.Where(n => n.HoldsVoters && n.IsLive || n.Id == nodeId).Select(n => n.Zone ?? "").Distinct().Count();
        int zonesAfter = others.Select(n => n.Zone ?? "").Distinct().Count();
        bool canKeep = others.Count >= replicationFactor;
        bool keepsZones = zonesAfter >= Math.Min(replicationFactor, zonesBefore);
        int held = current.Count(p => p.Holds(nodeId));
        int losing = current.Count(p =>
        {
            if (!p.Voters.Contains(nodeId)) return false;
            var rest = p.Voters.Where(v => v != nodeId).ToList();
            return rest.Count(v => byId.TryGetValue(v, out var n) && n.IsLive) < rest.Count / 2 + 1;
        });
        string reason = canKeep
            ? $"Node {nodeId} can be removed: {others.Count} other live nodes can hold the {held} replicas it has"
              + (keepsZones ? "." : $", but they span only {zonesAfter} zone(s), so some shards will have two replicas in one zone.")
            : $"Node {nodeId} cannot be removed without dropping shards below {replicationFactor} replicas: only {others.Count} other live node(s) can hold voters.";
        return new NodeRemovalCheck(nodeId, canKeep, held, others.Count, losing, keepsZones, reason);
    }

    private static Dictionary<int, RingNode> Index(IReadOnlyList<RingNode> nodes)
    {
        ArgumentNullException.ThrowIfNull(nodes);
        var byId = new Dictionary<int, RingNode>();
        foreach (var n in nodes)
            if (!byId.TryAdd(n.Id, n)) throw new ArgumentException($"Node {n.Id} appears twice.", nameof(nodes));
        return byId;
    }

    private static List<ShardWork> Analyze(IReadOnlyList<RingNode> nodes, IReadOnlyList<ShardPlacement> current, IReadOnlyList<ShardPlacement> desired)
    {
        ArgumentNullException.ThrowIfNull(current);
        ArgumentNullException.ThrowIfNull(desired);
        var byId = Index(nodes);
        var want = new Dictionary<int, ShardPlacement>();
        foreach (var d in desired)
            if (!want.TryAdd(d.Shard, d)) throw new ArgumentException($"Shard {d.Shard} appears twice in the desired placement.", nameof(desired));
        var seen = new HashSet<int>();
        var works = new List<ShardWork>(current.Count);
        foreach (var c in current.OrderBy(c => c.Shard))
        {
            if (!seen.Add(c.Shard)) throw new ArgumentException($"Shard {c.Shard} appears twice in the current placement.", nameof(current));
            if (!want.TryGetValue(c.Shard, out var d)) throw new ArgumentException($"Shard {c.Shard} has no desired placement.", nameof(desired));
            // Most shards are at their placement and have nothing to analyse.
            if (c.Learners.Count == 0 && c.Voters.Count == d.Voters.Count && c.Voters.All(d.Voters.Contains)) continue;
            works.Add(new ShardWork(c, d, byId));
        }
        return works;
    }

    // One shard's state against its placement, and its next step. Not thread-safe (local to a call).
    private sealed class ShardWork
    {
        private readonly Dictionary<int, RingNode> _nodes;
        private readonly IReadOnlyList<int> _voters;
        private readonly IReadOnlyList<int> _desired;
        private readonly int _live;

        public ShardWork(ShardPlacement current, ShardPlacement desired, Dictionary<int, RingNode> nodes)
        {
            _nodes = nodes;
            Shard = current.Shard;
            _voters = current.Voters;
            _desired = desired.Voters;
            // A learner on a learner-only node that is not wanted as a voter is a permanent asynchronous
            // replica; every other learner belongs to a move.
            Learners = current.Learners.Where(l => _desired.Contains(l) || !(nodes.TryGetValue(l, out var n) && n.LearnerOnly)).ToList();
            Outgoing = _voters.Where(v => !_desired.Contains(v)).OrderBy(UrgencyOf).ThenBy(v => v).ToList();
            // Learners already copying first, then the ring's order.
            Incoming = _desired.Where(d => !_voters.Contains(d)).OrderBy(d => Learners.Contains(d) ? 0 : 1).ToList();
            Stale = Learners.Where(l => !_desired.Contains(l)).Order().ToList();
            _live = _voters.Count(IsLive);
            HasQuorum = _voters.Count > 0 && _live >= Majority(_voters.Count);
            InMotion = Learners.Count > 0 || _voters.Count > _desired.Count;
            Done = Outgoing.Count == 0 && Incoming.Count == 0 && Learners.Count == 0;
            Urgency = Math.Min(_voters.Count < _desired.Count ? 0 : int.MaxValue, Outgoing.Count > 0 ? UrgencyOf(Outgoing[0]) : int.MaxValue);
        }

        public int Shard { get; }
        public IReadOnlyList<int> Desired => _desired;
        public List<int> Learners { get; }   // learners that belong to moves
        public List<int> Outgoing { get; }   // voters the placement does not want, most urgent first
        public List<int> Incoming { get; }   // wanted voters that are not voters yet
        public List<int> Stale { get; }      // learners the placement does not want
        public bool HasQuorum { get; }
        public bool InMotion { get; }
        public bool Done { get; }
        public int Urgency { get; }

        public MoveReason ReasonFor(int from) => from == 0 ? MoveReason.UnderReplicated : StateOf(from) switch
        {
            RingNodeState.Down => MoveReason.NodeDown,
            RingNodeState.Draining => MoveReason.NodeDraining,
            RingNodeState.Running or RingNodeState.Suspended => MoveReason.Rebalance,
            _ => MoveReason.NodeRemoved,
        };

        public ShardMove? NextStep()
        {
            if (Stale.Count > 0) return new ShardMove(Shard, Stale[0], 0, ShardMoveStep.RemoveLearner, MoveReason.Abandoned);
            if (_voters.Count > _desired.Count)
            {
                // The replacement is a voter already: remove the most urgent voter whose removal keeps a majority.
                foreach (int o in Outgoing)
                    if (_live - (IsLive(o) ? 1 : 0) >= Majority(_voters.Count - 1) && _voters.Count > 1)
                        return new ShardMove(Shard, o, 0, ShardMoveStep.RemoveVoter, ReasonFor(o));
                return null;
            }
            var pending = Incoming.Where(Learners.Contains).ToList();
            if (pending.Count > 0)
            {
                foreach (int x in pending)
                    if (IsLive(x) && _live + 1 >= Majority(_voters.Count + 1))
                        return new ShardMove(Shard, PairOf(x), x, ShardMoveStep.PromoteLearner, ReasonFor(PairOf(x)));
                return null; // wait for the learner's node rather than copy a second time
            }
            foreach (int t in Incoming)
                if (_nodes.TryGetValue(t, out var n) && n.CanReceive)
                    return new ShardMove(Shard, PairOf(t), t, ShardMoveStep.AddLearner, ReasonFor(PairOf(t)));
            return null;
        }

        // The voter an arriving replica replaces: Outgoing and Incoming are paired by position.
        private int PairOf(int incoming)
        {
            int k = Incoming.IndexOf(incoming);
            return k < Outgoing.Count ? Outgoing[k] : 0;
        }

        private static int Majority(int voters) => voters / 2 + 1;

        private RingNodeState? StateOf(int node) => _nodes.TryGetValue(node, out var n) ? n.State : null;

        private bool IsLive(int node) => _nodes.TryGetValue(node, out var n) && n.IsLive;

        // Which replicas to move first: those on removed (or unknown) nodes, then down, then draining, then the rest.
        private int UrgencyOf(int node) => StateOf(node) switch
        {
            RingNodeState.Removed or null => 0,
            RingNodeState.Down => 1,
            RingNodeState.Draining => 2,
            _ => 3,
        };
    }
}
