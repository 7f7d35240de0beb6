namespace Replication.Engine.Ring;

/// <summary>
/// The consistent-hash ring: nodes own virtual nodes (tokens) on the 64-bit hash space, and a shard's
/// voters are the first ReplicationFactor distinct nodes clockwise from its position (the start of its
/// range), distinct zones first (design: shared/DESIGN.md, "Ring and shards"). Pure: the placement is
/// a function of the nodes, the settings, the shard map and the pins alone, so every process computes
/// the same one, and a node joining or leaving changes only what the ring then computes differently.
/// Immutable and thread-safe.
/// Balance: plain consistent hashing leaves each node's count noisy (about ±7% standard deviation at
/// ~120 replicas per node even with many tokens, so the fullest of 100 nodes holds ~1.17× the mean),
/// so the walk uses consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam,
/// "Consistent Hashing with Bounded Loads", SODA 2018): each node has a capacity just above the mean
/// and the walk passes nodes that are full. The price is movement: when the capacity moves with the
/// node count, full nodes shed replicas that then land further clockwise, so a join or leave moves
/// somewhat more than its ideal share (measured: tests/Replication.Simulation/Placement and the
/// README's "The ring"). See <see cref="RingSettings"/> for the chosen parameters.
/// </summary>
public sealed class HashRing
{
    private readonly RingNode[] _nodes;        // every node, sorted by id
    private readonly RingNode[] _voterNodes;   // nodes that hold voters, sorted by id; a "slot" is an index here
    private readonly Dictionary<int, int> _slotOf;
    private readonly int[] _zoneOf;            // zone number per slot
    private readonly int _zoneCount;
    private readonly ulong[] _positions;       // token positions, ascending
    private readonly int[] _tokenSlot;         // owning slot per token
    private readonly RingToken[] _tokens;

    /// <summary>A ring over <paramref name="nodes"/> (distinct positive ids). Only nodes that hold voters
    /// (<see cref="RingNode.HoldsVoters"/>) have tokens on it.</summary>
    public HashRing(IEnumerable<RingNode> nodes, RingSettings? settings = null)
    {
        ArgumentNullException.ThrowIfNull(nodes);
        Settings = settings ?? new RingSettings();
        _nodes = nodes.OrderBy(n => n.Id).ToArray();
        for (int i = 0; i < _nodes.Length; i++)
        {
            if (_nodes[i].Id <= 0) throw new ArgumentException($"Node id {_nodes[i].Id} is not positive.", nameof(nodes));
            if (i > 0 && _nodes[i].Id == _nodes[i - 1].Id) throw new ArgumentException($"Node {_nodes[i].Id} appears twice.", nameof(nodes));
        }
        _voterNodes = _nodes.Where(n => n.HoldsVoters).ToArray();
        _slotOf = new Dictionary<int, int>(_voterNodes.Length);
        for (int i = 0; i < _voterNodes.Length; i++) _slotOf.Add(_voterNodes[i].Id, i);

        var zoneNames = _voterNodes.Select(n => n.Zone ?? "").Distinct().Order(StringComparer.Ordinal).ToList();
        _zoneCount = zoneNames.Count;
        _zoneOf = _voterNodes.Select(n => zoneNames.IndexOf(n.Zone ?? "")).ToArray();

        int t = Settings.TokensPerNode;
        _tokens = new RingToken[_voterNodes.Length * t];
        for (int i = 0; i < _voterNodes.Length; i++)
            for (int k = 0; k < t; k++)
                _tokens[i * t + k] = new RingToken(TokenPosition(_voterNodes[i].Id, k), _voterNodes[i].Id, k);
        // Positions are distinct (TokenPosition is injective), so this order is total.
        Array.Sort(_tokens, (a, b) => a.Position.CompareTo(b.Position));
        _positions = _tokens.Select(x => x.Position).ToArray();
        _tokenSlot = _tokens.Select(x => _slotOf[x.Node]).ToArray();
    }

    /// <summary>The settings the ring was built with.</summary>
    public RingSettings Settings { get; }

    /// <summary>Every node given, sorted by id.</summary>
    public IReadOnlyList<RingNode> Nodes => _nodes;

    /// <summary>The tokens, sorted by position.</summary>
    public IReadOnlyList<RingToken> Tokens => _tokens;

    /// <summary>
    /// Position of token <paramref name="index"/> of node <paramref name="node"/>: fmix64 of
    /// (node &lt;&lt; 32 | index) (<see cref="KeyHash.Mix"/>). Stable forever, computed from these two
    /// numbers alone, and injective (fmix64 is a bijection), so no two tokens ever share a position.
    /// </summary>
    public static ulong TokenPosition(int node, int index) => KeyHash.Mix(((ulong)(uint)node << 32) | (uint)index);

    /// <summary>The node owning the first token at or after <paramref name="position"/>, wrapping past the
    /// top of the space. Throws when no node holds voters (the ring is empty).</summary>
    public int OwnerOf(ulong position)
    {
        if (_positions.Length == 0) throw new InvalidOperationException("The ring has no tokens: no node can hold voters.");
        return _voterNodes[_tokenSlot[FirstTokenAtOrAfter(position)]].Id;
    }

    /// <summary>
    /// The ring's placement of every shard of <paramref name="map"/>, ordered by shard id, with
    /// min(ReplicationFactor, nodes that hold voters) voters each, in the order chosen, and no learners.
    /// Rules, in order of precedence: (1) a pin's nodes that can hold voters come first, in the pin's
    /// order (pins of shards not in the map are ignored); (2) distinct nodes; (3) distinct zones while the shard has not used every zone; (4)
    /// capacity: no node gets more than C = max(⌈mean⌉, ⌊(1 + LoadBound) · mean⌋) voters, where
    /// mean = shards · voters-per-shard / nodes-that-hold-voters, while a node that satisfies the
    /// rules above has room. Within those rules a shard takes nodes in clockwise order from the
    /// first token at or after the start of its range.
    /// Processing order (it decides which shards reach a node before it is full): pins first, then
    /// shards in ring order (by range start), each shard complete before the next. Measured against a
    /// hashed order, slot-by-slot rounds and a global sweep by distance: no difference in spread or
    /// movement beyond noise, so the simplest order is used.
    /// So no node holds more than C (max/mean ≤ 1 + LoadBound once LoadBound · mean ≥ 1) unless a
    /// pin, or a shard that finds fewer free nodes than it needs in the zones it still needs, forces
    /// one over; the slack of LoadBound · mean per node makes that rare (the placement simulation
    /// reports the worst spread it saw).
    /// </summary>
    public IReadOnlyList<ShardPlacement> Place(ShardRangeMap map, IEnumerable<ShardPin>? pins = null)
    {
        ArgumentNullException.ThrowIfNull(map);
        var ranges = map.Ranges;
        int shards = ranges.Count;
        int slots = _voterNodes.Length;
        int rf = Math.Min(Settings.ReplicationFactor, slots);
        var chosen = new int[shards][];
        var count = new int[shards];
        for (int i = 0; i < shards; i++) chosen[i] = new int[rf];
        var load = new int[slots];
        double mean = rf == 0 ? 0 : (double)shards * rf / slots;
        int capacity = Math.Max((int)Math.Ceiling(mean), (int)Math.Floor((1 + Settings.LoadBound) * mean));

        var pinned = new Dictionary<int, ShardPin>();
        foreach (var pin in pins ?? [])
            if (!pinned.TryAdd(pin.Shard, pin)) throw new ArgumentException($"Shard {pin.Shard} is pinned twice.", nameof(pins));
        for (int i = 0; i < shards && rf > 0; i++)
        {
            if (!pinned.TryGetValue(ranges[i].Shard, out var pin)) continue;
            foreach (int node in pin.Nodes)
                if (count[i] < rf && _slotOf.TryGetValue(node, out int slot) && !Chose(chosen[i], count[i], slot))
                {
                    chosen[i][count[i]++] = slot;
                    load[slot]++;
                }
        }

        var zoneUsed = new bool[_zoneCount];
        for (int i = 0; i < shards; i++)
        {
            if (count[i] == rf) continue;
            Array.Clear(zoneUsed);
            int zonesUsed = 0;
            for (int k = 0; k < count[i]; k++)
                if (!zoneUsed[_zoneOf[chosen[i][k]]]) { zoneUsed[_zoneOf[chosen[i][k]]] = true; zonesUsed++; }
            int start = FirstTokenAtOrAfter(ranges[i].Start);
            // Relax one rule at a time, capacity before zones: zones are about surviving a failure.
            Walk(start, chosen[i], ref count[i], rf, load, capacity, zoneUsed, ref zonesUsed, newZone: true, room: true);
            Walk(start, chosen[i], ref count[i], rf, load, capacity, zoneUsed, ref zonesUsed, newZone: true, room: false);
            Walk(start, chosen[i], ref count[i], rf, load, capacity, zoneUsed, ref zonesUsed, newZone: false, room: true);
            Walk(start, chosen[i], ref count[i], rf, load, capacity, zoneUsed, ref zonesUsed, newZone: false, room: false);
        }

        var result = new ShardPlacement[shards];
        for (int i = 0; i < shards; i++)
            result[i] = new ShardPlacement(ranges[i].Shard, chosen[i].Take(count[i]).Select(slot => _voterNodes[slot].Id).ToArray());
        Array.Sort(result, (a, b) => a.Shard.CompareTo(b.Shard));
        return result;
    }

    /// <summary>
    /// One row per node (ordered by id): its tokens and their share of the hash space, and from the
    /// given placement, leaders and shard sizes, the shards it holds (voter or learner), leads, and the
    /// bytes it holds. Missing leaders or sizes count as none and 0.
    /// </summary>
    public IReadOnlyList<RingEntry> Summarize(IReadOnlyList<ShardPlacement> placement, IReadOnlyDictionary<int, int>? leaders = null, IReadOnlyDictionary<int, long>? shardBytes = null)
    {
        ArgumentNullException.ThrowIfNull(placement);
        var owned = new Dictionary<int, UInt128>();
        var tokens = new Dictionary<int, int>();
        for (int i = 0; i < _tokens.Length; i++)
        {
            // Token i owns (previous token, its position]; the first token's arc wraps past the top.
            ulong arc = i > 0 ? _positions[i] - _positions[i - 1] : unchecked(_positions[0] - _positions[^1]);
            UInt128 size = _tokens.Length == 1 ? (UInt128)ulong.MaxValue + 1 : arc;
            owned[_tokens[i].Node] = owned.GetValueOrDefault(_tokens[i].Node) + size;
            tokens[_tokens[i].Node] = tokens.GetValueOrDefault(_tokens[i].Node) + 1;
        }
        var held = new Dictionary<int, int>();
        var bytes = new Dictionary<int, long>();
        foreach (var p in placement)
            foreach (int node in p.Voters.Concat(p.Learners))
            {
                held[node] = held.GetValueOrDefault(node) + 1;
                bytes[node] = bytes.GetValueOrDefault(node) + (shardBytes?.GetValueOrDefault(p.Shard) ?? 0);
            }
        var led = new Dictionary<int, int>();
        foreach (var (_, leader) in leaders ?? new Dictionary<int, int>())
            led[leader] = led.GetValueOrDefault(leader) + 1;
        return _nodes.Select(n => new RingEntry(
            n.Id, n.Zone, n.State, tokens.GetValueOrDefault(n.Id),
            (double)owned.GetValueOrDefault(n.Id) / Math.Pow(2, 64),
            held.GetValueOrDefault(n.Id), led.GetValueOrDefault(n.Id), bytes.GetValueOrDefault(n.Id))).ToArray();
    }

    private int FirstTokenAtOrAfter(ulong position)
    {
        int i = Array.BinarySearch(_positions, position);
        if (i < 0) i = ~i;
        return i == _positions.Length ? 0 : i;
    }

    private static bool Chose(int[] chosen, int count, int slot)
    {
        for (int k = 0; k < count; k++)
            if (chosen[k] == slot) return true;
        return false;
    }

    // One clockwise lap from token `start`, taking nodes that pass the filters until the shard has rf.
    private void Walk(int start, int[] chosen, ref int count, int rf, int[] load, int capacity,
        bool[] zoneUsed, ref int zonesUsed, bool newZone, bool room)
    {
        int n = _positions.Length;
        for (int step = 0; step < n && count < rf; step++)
        {
            if (newZone && zonesUsed == _zoneCount) return;
            int t = start + step;
            int slot = _tokenSlot[t < n ? t : t - n];
            if (room && load[slot] >= capacity) continue;
            if (newZone && zoneUsed[_zoneOf[slot]]) continue;
            if (Chose(chosen, count, slot)) continue;
            chosen[count++] = slot;
            load[slot]++;
            if (!zoneUsed[_zoneOf[slot]]) { zoneUsed[_zoneOf[slot]] = true; zonesUsed++; }
        }
    }
}
