namespace Replication.Engine.Ring;

/// <summary>
/// Spreads shard leaderships over the nodes that may lead, by leader transfers, so writes spread over
/// every node (multi-primary; design: shared/DESIGN.md, "Ring and shards"). Pure, deterministic and
/// thread-safe: the plan is a function of the voters, the current leaders and the node states only.
/// What it achieves. Let S be the shards it balances (those with a live leader and at least one voter
/// that may lead) and N the nodes that may lead (<see cref="RingNode.CanLead"/>) and vote in at least
/// one of them. A shard can only be led by its own voters, so the result is the best assignment the
/// voter sets allow: an optimal semi-matching, in which no node leads two or more shards more than
/// some node it could hand one to, directly or along a chain of transfers (Harvey, Ladner, Lovász,
/// Tamir, "Semi-matchings for bipartite graphs and load balancing", 2006). That minimises the
/// largest count and every other measure of spread at once; whenever some assignment gives every
/// node ⌊S/N⌋ or ⌈S/N⌉ (always in practice with the ring's placement; not, for example, when a
/// node votes in fewer than ⌊S/N⌋ shards), this one does.
/// No flapping: applying the returned transfers and planning again returns nothing; a balanced
/// cluster gets no transfers; each shard appears at most once (no transfer chains within a plan).
/// Transfers are few: a shard moves only when its leader may not lead, or to relieve a node two or
/// more above another; with unconstrained voter sets that is the minimum number.
/// </summary>
public static class LeaderBalancer
{
    /// <summary>
    /// The transfers, ordered by shard id. A shard whose leader is missing, not one of its voters, or
    /// not live (down, removed, unknown) is left out: its election comes first. A shard whose leader
    /// may not lead (suspended, draining) moves to the least-loaded voter that may; if none may, it stays.
    /// </summary>
    /// <param name="nodes">Every node; a voter not listed may not lead.</param>
    /// <param name="shards">Each shard's voters (learners are ignored: they cannot lead).</param>
    /// <param name="leaders">Each shard's current leader (0 or absent: none known).</param>
    public static IReadOnlyList<LeaderTransfer> Plan(IReadOnlyList<RingNode> nodes, IReadOnlyList<ShardPlacement> shards,
        IReadOnlyDictionary<int, int> leaders)
    {
        ArgumentNullException.ThrowIfNull(nodes);
        ArgumentNullException.ThrowIfNull(shards);
        ArgumentNullException.ThrowIfNull(leaders);
        var byId = new Dictionary<int, RingNode>();
        foreach (var n in nodes)
            if (!byId.TryAdd(n.Id, n)) throw new ArgumentException($"Node {n.Id} appears twice.", nameof(nodes));
        bool CanLead(int id) => byId.TryGetValue(id, out var n) && n.CanLead;
        bool IsLive(int id) => byId.TryGetValue(id, out var n) && n.IsLive;

        // The balanced shards, their candidate leaders (sorted ids) and current leader.
        var included = new List<(int Shard, int[] Candidates, int Leader)>();
        foreach (var p in shards.OrderBy(p => p.Shard))
        {
            if (!leaders.TryGetValue(p.Shard, out int leader) || !p.Voters.Contains(leader) || !IsLive(leader)) continue;
            var candidates = p.Voters.Where(CanLead).Order().ToArray();
            if (candidates.Length > 0) included.Add((p.Shard, candidates, leader));
        }
        var state = new Assignment(included.Select(x => x.Candidates).ToArray());

        // Shards led by a node that may lead keep their leader for now; the others go to the
        // least-loaded candidate, in shard order.
        var forced = new List<int>();
        for (int s = 0; s < included.Count; s++)
        {
            if (CanLead(included[s].Leader)) state.Assign(s, included[s].Leader);
            else forced.Add(s);
        }
        foreach (int s in forced)
            state.Assign(s, included[s].Candidates.OrderBy(state.Load).ThenBy(id => id).First());

        state.Balance();

        var transfers = new List<LeaderTransfer>();
        for (int s = 0; s < included.Count; s++)
            if (state.LeaderOf(s) != included[s].Leader)
                transfers.Add(new LeaderTransfer(included[s].Shard, included[s].Leader, state.LeaderOf(s)));
        return transfers;
    }

    // Leaders per shard (by position in the included list) and shards per node. Local to one call.
    private sealed class Assignment(int[][] candidates)
    {
        private readonly int[] _leader = new int[candidates.Length];
        private readonly SortedDictionary<int, SortedSet<int>> _led = new(
            candidates.SelectMany(c => c).Distinct().ToDictionary(id => id, _ => new SortedSet<int>()));

        public int Load(int node) => _led[node].Count;

        public int LeaderOf(int shard) => _leader[shard];

        public void Assign(int shard, int node)
        {
            if (_leader[shard] != 0) _led[_leader[shard]].Remove(shard);
            _leader[shard] = node;
            _led[node].Add(shard);
        }

        // Applies cost-reducing paths until none is left: from a node u, a chain u -> ... -> v of
        // transfers (each to a candidate of the shard moved) where v leads at most Load(u) - 2.
        // Nodes are tried from the most loaded (then lowest id): a direct transfer to the least-loaded
        // candidate from any of them first, else the shortest chain (breadth-first, in id and shard
        // order). Direct first across the nodes, not per node: a chain from the first node moved two
        // leaderships where another node equally loaded could hand one over directly (a restarted node
        // whose replica of the first node's shard was still catching up).
        // Every path lowers the sum of squared loads, so this ends; when no node has a path, the
        // assignment is an optimal semi-matching (Harvey et al. 2006, theorem 1).
        public void Balance()
        {
            bool improved = _led.Count > 1;
            while (improved)
            {
                int least = _led.Keys.Min(Load);
                var order = _led.Keys.OrderByDescending(Load).ThenBy(id => id).TakeWhile(u => Load(u) - 2 >= least).ToList();
                improved = order.Any(TryDirect) || order.Any(TryChain); // none: no node leads few enough to take one
            }
        }

        private bool TryDirect(int u)
        {
            int bestShard = -1, bestNode = 0;
            foreach (int s in _led[u])
                foreach (int v in candidates[s])
                    if (v != u && (bestShard < 0 || Load(v) < Load(bestNode) || Load(v) == Load(bestNode) && v < bestNode))
                        (bestShard, bestNode) = (s, v);
            if (bestShard < 0 || Load(bestNode) > Load(u) - 2) return false;
            Assign(bestShard, bestNode);
            return true;
        }

        private bool TryChain(int u)
        {
            var via = new Dictionary<int, (int From, int Shard)> { [u] = (0, -1) };
            var queue = new Queue<int>();
            queue.Enqueue(u);
            while (queue.Count > 0)
            {
                int x = queue.Dequeue();
                foreach (int s in _led[x])
                    foreach (int y in candidates[s])
                    {
                        if (via.ContainsKey(y)) continue;
                        via[y] = (x, s);
                        if (Load(y) <= Load(u) - 2)
                        {
                            // Hand each shard on the path to the next node, from the end back to u.
                            for (int node = y; node != u; node = via[node].From) Assign(via[node].Shard, node);
                            return true;
                        }
                        queue.Enqueue(y);
                    }
            }
            return false;
        }
    }
}
