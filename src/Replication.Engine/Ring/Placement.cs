namespace Replication.Engine.Ring;

/// <summary>
/// Which nodes hold each shard. Immutable: a change makes a new instance.
/// The initial placement spreads shard s over nodes s, s+1, ... (mod node count), ReplicationFactor
/// distinct nodes, so every node holds about the same number of replicas. It is persisted with the
/// cluster; the consistent-hash ring with virtual nodes (and moves between placements) replaces
/// this rule when nodes join and leave.
/// </summary>
public sealed class Placement
{
    private readonly int[][] _replicas;

    public Placement(IReadOnlyList<IReadOnlyList<int>> replicas)
    {
        _replicas = replicas.Select(r => r.ToArray()).ToArray();
        for (int s = 0; s < _replicas.Length; s++)
            if (_replicas[s].Length == 0 || _replicas[s].Distinct().Count() != _replicas[s].Length)
                throw new ArgumentException($"Shard {s} needs one or more distinct replicas.");
    }

    public int ShardCount => _replicas.Length;

    public IReadOnlyList<int> ReplicasOf(int shard) => _replicas[shard];

    public IEnumerable<int> ShardsOn(int node) => Enumerable.Range(0, _replicas.Length).Where(s => _replicas[s].Contains(node));

    /// <summary>The initial round-robin placement over nodes 1..nodeCount.</summary>
    public static Placement RoundRobin(int nodeCount, int shardCount, int replicationFactor)
    {
        if (replicationFactor < 1 || replicationFactor > nodeCount)
            throw new ArgumentOutOfRangeException(nameof(replicationFactor), "Replication factor must be between 1 and the node count.");
        var replicas = new List<IReadOnlyList<int>>();
        for (int s = 0; s < shardCount; s++)
            replicas.Add(Enumerable.Range(0, replicationFactor).Select(k => (s + k) % nodeCount + 1).ToArray());
        return new Placement(replicas);
    }
}
