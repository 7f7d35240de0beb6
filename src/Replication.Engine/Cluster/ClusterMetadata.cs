using System.Text.Json;
using System.Text.Json.Serialization;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// The cluster's metadata as replicated by the metadata group (<see cref="MetadataGroup"/>, a Raft
/// group every node hosts): identity and shape, the node registry (id → endpoint) and the placement
/// (shard → replicas). Stored the cheap way: as keys of the metadata group's own shard in the KvStore,
/// so snapshots, compaction and restarts work exactly as for data. Keys (values are JSON):
/// <list type="bullet">
/// <item><c>cluster</c>: <see cref="ClusterInfo"/> (written once, by the founding node);</item>
/// <item><c>node/{id:D10}</c>: <see cref="NodeEntry"/> (endpoint and the join token that admitted it);</item>
/// <item><c>placement/{shard:D10}</c>: the shard's replicas, an int array;</item>
/// <item><c>shardmap</c>: the hash range of every shard (<see cref="Ring.ShardRangeMap"/>), versioned: splits add shards;</item>
/// <item><c>nextshard</c>: the id the next split gives its new shard (taken by compare-and-set, so two splits never share one);</item>
/// <item><c>pin/{shard:D10}</c>: an operator's placement of the shard (Move-ReplicationShard), an int array the ring keeps
/// (<see cref="Ring.ShardPin"/>).</item>
/// <item><c>replica/{shard:D10}</c>: the member id of each node's latest replica of the shard (<see cref="Transport.ReplicaIds"/>),
/// a JSON object node → member id; a node without one there has member id = node id (a founding replica).</item>
/// </list>
/// Immutable: every change is a new instance read back from the store. Thread-safe.
/// </summary>
public sealed record ClusterMetadata
{
    /// <summary>Reserved group (and KvStore shard) id of the metadata group; data shards are 0..ShardCount-1 (at most 1024).</summary>
    public const int MetadataGroup = 1_000_000;
    /// <summary>The metadata group has at most this many voters (the lowest node ids); other nodes follow it as learners.</summary>
    public const int MaxMetadataVoters = 5;

    public const string ClusterKey = "cluster";
    public const string NodePrefix = "node/";
    public const string PlacementPrefix = "placement/";
    public const string ShardMapKey = "shardmap";
    public const string NextShardKey = "nextshard";
    public const string PinPrefix = "pin/";
    public const string ReplicaIdPrefix = "replica/";

    internal static readonly JsonSerializerOptions Json = new() { DefaultIgnoreCondition = JsonIgnoreCondition.Never };

    public static readonly ClusterMetadata Empty = new();

    /// <summary>Null until the founding node wrote it.</summary>
    public ClusterInfo? Cluster { get; init; }
    public IReadOnlyDictionary<int, NodeEntry> Nodes { get; init; } = new Dictionary<int, NodeEntry>();
    /// <summary>Replicas of each shard that has a placement yet.</summary>
    public IReadOnlyDictionary<int, IReadOnlyList<int>> Placement { get; init; } = new Dictionary<int, IReadOnlyList<int>>();
    /// <summary>The shards and their hash ranges; null until the founding node wrote it.</summary>
    public Ring.ShardRangeMap? ShardMap { get; init; }
    /// <summary>The id the next split gives its new shard.</summary>
    public int NextShard { get; init; }
    /// <summary>Operators' pins (Move-ReplicationShard): shard → nodes that must hold its voters.</summary>
    public IReadOnlyDictionary<int, IReadOnlyList<int>> Pins { get; init; } = new Dictionary<int, IReadOnlyList<int>>();

    /// <summary>Per shard, the member id of each node's latest replica there (only those past incarnation 0).</summary>
    public IReadOnlyDictionary<int, IReadOnlyDictionary<int, int>> ReplicaIds { get; init; } = new Dictionary<int, IReadOnlyDictionary<int, int>>();

    public static string NodeKey(int id) => $"{NodePrefix}{id:D10}";
    public static string PlacementKey(int shard) => $"{PlacementPrefix}{shard:D10}";
    public static string PinKey(int shard) => $"{PinPrefix}{shard:D10}";
    public static string ReplicaIdKey(int shard) => $"{ReplicaIdPrefix}{shard:D10}";

    /// <summary>The member id of <paramref name="node"/>'s current (or next) replica of <paramref name="shard"/>.</summary>
    public int MemberIdOf(int shard, int node) =>
        ReplicaIds.TryGetValue(shard, out var ids) && ids.TryGetValue(node, out int member) ? member : node;

    /// <summary>The member ids a data shard's group should have as voters now (<see cref="DesiredVoters"/>, as members).</summary>
    public IReadOnlyList<int> DesiredVoterMembers(int shard) => DesiredVoters(shard).Select(n => MemberIdOf(shard, n)).ToArray();

    /// <summary>The member ids a data shard's group should have as learners now (<see cref="DesiredLearners"/> that are not
    /// voters, as members).</summary>
    public IReadOnlyList<int> DesiredLearnerMembers(int shard)
    {
        var voters = DesiredVoters(shard);
        return DesiredLearners().Where(n => !voters.Contains(n)).Select(n => MemberIdOf(shard, n)).ToArray();
    }

    /// <summary>
    /// The write that gives each of <paramref name="nodes"/> a new replica id in <paramref name="shard"/> (the next
    /// incarnation after its last one there), to go in the same proposal as the change that names them anew: a node
    /// placed on a shard it does not hold, a node made learner-only, a rebuilt node let back. Null when
    /// <paramref name="nodes"/> is empty. <paramref name="from"/>: the shard whose ids a new shard inherits (a split), else
    /// the shard itself.
    /// </summary>
    public KvOp? NewReplicaIds(int shard, IEnumerable<int> nodes, int? from = null)
    {
        var ids = ReplicaIds.TryGetValue(from ?? shard, out var known) ? known.ToDictionary(k => k.Key, k => k.Value) : new Dictionary<int, int>();
        bool changed = from is not null && from != shard && ids.Count > 0;
        foreach (int node in nodes.Distinct())
        {
            ids[node] = Transport.ReplicaIds.Next(ids.TryGetValue(node, out int last) ? last : node);
            changed = true;
        }
        return changed ? new KvOp(KvOpType.Put, ReplicaIdKey(shard), JsonSerializer.Serialize(ids, Json), null) : null;
    }

    public IReadOnlyList<int> ReplicasOf(int shard) => Placement.TryGetValue(shard, out var r) ? r : Array.Empty<int>();

    /// <summary>The voters a data shard's group should have now: its placement without nodes being rebuilt.</summary>
    public IReadOnlyList<int> DesiredVoters(int shard) => ReplicasOf(shard).Where(id => !IsRebuilding(id)).ToArray();

    public bool IsRebuilding(int node) => Nodes.TryGetValue(node, out var e) && e.Rebuilding;

    /// <summary>The learners every data shard should have: the learner-only nodes (asynchronous replicas) that are neither
    /// leaving nor being rebuilt.</summary>
    public IReadOnlyList<int> DesiredLearners() =>
        Nodes.Where(n => n.Value.Learner && !n.Value.Leaving && !n.Value.Rebuilding).Select(n => n.Key).Order().ToArray();

    /// <summary>The membership the metadata group should have: the lowest <see cref="MaxMetadataVoters"/> ids of the nodes
    /// that are not learner-only vote, every other node learns; a node being rebuilt is in neither.</summary>
    public (IReadOnlyList<int> Voters, IReadOnlyList<int> Learners) MetadataMembership()
    {
        var ids = Nodes.Where(n => !n.Value.Rebuilding).OrderBy(n => n.Key).ToArray();
        var voters = ids.Where(n => !n.Value.Learner).Select(n => n.Key).Take(MaxMetadataVoters).ToArray();
        return (voters, ids.Select(n => n.Key).Except(voters).ToArray());
    }

    /// <summary>Reads the metadata from the metadata group's shard of <paramref name="store"/> (thread-safe reads).</summary>
    public static ClusterMetadata Read(KvStore store) => FromRows(store.Scan(MetadataGroup, "").Select(k => (k.Key, k.Value)));

    /// <exception cref="StorageCorruptException">A value is not the JSON its key calls for.</exception>
    public static ClusterMetadata FromRows(IEnumerable<(string Key, string Value)> rows)
    {
        ClusterInfo? info = null;
        var nodes = new Dictionary<int, NodeEntry>();
        var placement = new Dictionary<int, IReadOnlyList<int>>();
        Ring.ShardRangeMap? map = null;
        int nextShard = 0;
        var pins = new Dictionary<int, IReadOnlyList<int>>();
        var replicaIds = new Dictionary<int, IReadOnlyDictionary<int, int>>();
        try
        {
            foreach (var (key, value) in rows)
            {
                if (key == ClusterKey) info = JsonSerializer.Deserialize<ClusterInfo>(value, Json);
                else if (key.StartsWith(NodePrefix, StringComparison.Ordinal) && int.TryParse(key.AsSpan(NodePrefix.Length), out int id))
                    nodes[id] = JsonSerializer.Deserialize<NodeEntry>(value, Json) ?? throw new JsonException("null node entry");
                else if (key.StartsWith(PlacementPrefix, StringComparison.Ordinal) && int.TryParse(key.AsSpan(PlacementPrefix.Length), out int shard))
                    placement[shard] = JsonSerializer.Deserialize<int[]>(value, Json) ?? throw new JsonException("null placement");
                else if (key == ShardMapKey) map = Ring.ShardRangeMap.FromJson(value);
                else if (key.StartsWith(PinPrefix, StringComparison.Ordinal) && int.TryParse(key.AsSpan(PinPrefix.Length), out int pinned))
                    pins[pinned] = JsonSerializer.Deserialize<int[]>(value, Json) ?? throw new JsonException("null pin");
                else if (key.StartsWith(ReplicaIdPrefix, StringComparison.Ordinal) && int.TryParse(key.AsSpan(ReplicaIdPrefix.Length), out int ofShard))
                    replicaIds[ofShard] = JsonSerializer.Deserialize<Dictionary<int, int>>(value, Json) ?? throw new JsonException("null replica ids");
                else if (key == NextShardKey) nextShard = int.Parse(value, System.Globalization.CultureInfo.InvariantCulture);
            }
        }
        catch (Exception e) when (e is JsonException or FormatException or OverflowException)
        {
            throw new StorageCorruptException($"The cluster metadata does not parse: {e.Message}");
        }
        return new ClusterMetadata { Cluster = info, Nodes = nodes, Placement = placement, ShardMap = map, NextShard = nextShard, Pins = pins, ReplicaIds = replicaIds };
    }

    /// <summary>As rows (key, JSON value): how the metadata travels in a join response.</summary>
    public IEnumerable<(string Key, string Value)> ToRows()
    {
        if (Cluster is not null) yield return (ClusterKey, JsonSerializer.Serialize(Cluster, Json));
        foreach (var (id, node) in Nodes.OrderBy(n => n.Key)) yield return (NodeKey(id), JsonSerializer.Serialize(node, Json));
        foreach (var (shard, replicas) in Placement.OrderBy(p => p.Key)) yield return (PlacementKey(shard), JsonSerializer.Serialize(replicas, Json));
        if (ShardMap is not null) yield return (ShardMapKey, ShardMap.ToJson());
        foreach (var (shard, nodes) in Pins.OrderBy(p => p.Key)) yield return (PinKey(shard), JsonSerializer.Serialize(nodes, Json));
        foreach (var (shard, ids) in ReplicaIds.OrderBy(p => p.Key)) yield return (ReplicaIdKey(shard), JsonSerializer.Serialize(ids, Json));
        if (NextShard != 0) yield return (NextShardKey, NextShard.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>The shard map as written, or an even map of the cluster's initial shard count while none is known yet.</summary>
    public Ring.ShardRangeMap MapOr(int shardCount) => ShardMap ?? Ring.ShardRangeMap.Even(shardCount);

    public string ToJson() => JsonSerializer.Serialize(ToRows().ToDictionary(r => r.Key, r => r.Value), Json);

    /// <exception cref="StorageCorruptException">Not metadata JSON.</exception>
    public static ClusterMetadata FromJson(string json)
    {
        Dictionary<string, string>? rows;
        try { rows = JsonSerializer.Deserialize<Dictionary<string, string>>(json, Json); }
        catch (JsonException e) { throw new StorageCorruptException($"The cluster metadata does not parse: {e.Message}"); }
        return FromRows((rows ?? new()).Select(kv => (kv.Key, kv.Value)));
    }
}
