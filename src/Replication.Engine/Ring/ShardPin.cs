namespace Replication.Engine.Ring;

/// <summary>
/// An operator's placement of one shard that the ring keeps (Move-ReplicationShard records one).
/// The pinned nodes that can hold voters (<see cref="RingNode.HoldsVoters"/>) are the shard's first
/// replicas, in the order given, up to the replication factor; the ring fills any remaining slots
/// by its usual clockwise walk. So a pin on a node that later drains or leaves degrades gracefully:
/// that slot goes back to the ring. Immutable.
/// </summary>
/// <param name="Shard">The pinned shard.</param>
/// <param name="Nodes">The nodes that must hold a voter of the shard, distinct.</param>
public sealed record ShardPin(int Shard, IReadOnlyList<int> Nodes)
{
    /// <summary>The pinned nodes, in order (a copy of the list given).</summary>
    public IReadOnlyList<int> Nodes { get; init; } = Nodes.ToArray();

    /// <summary>
    /// The pin that moves <paramref name="shard"/>'s replica from <paramref name="fromNode"/> to
    /// <paramref name="toNode"/>: the shard's current <paramref name="voters"/> with fromNode replaced
    /// by toNode, in place. fromNode must be a voter and toNode must not (a caller without -FromNode
    /// chooses one first).
    /// </summary>
    public static ShardPin Move(int shard, IReadOnlyList<int> voters, int fromNode, int toNode)
    {
        ArgumentNullException.ThrowIfNull(voters);
        if (!voters.Contains(fromNode)) throw new ArgumentException($"Node {fromNode} holds no voter of shard {shard}.", nameof(fromNode));
        if (voters.Contains(toNode)) throw new ArgumentException($"Node {toNode} already holds shard {shard}.", nameof(toNode));
        return new ShardPin(shard, voters.Select(v => v == fromNode ? toNode : v).ToArray());
    }
}
