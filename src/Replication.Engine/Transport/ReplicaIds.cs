namespace Replication.Engine.Transport;

/// <summary>
/// The one mapping between a Raft group's member ids and the nodes that host them (pure, thread-safe). A member id
/// names one replica, never reused within its group (as CockroachDB's ReplicaID): a node that drops its replica of a
/// shard and is named again later rejoins as a new member, so a member that missed the changes in between can never
/// count the new, empty replica as the old one that voted or acknowledged (README, "The ring": the replica-id bug).
/// Encoding, in the int a Raft core already uses: <c>(incarnation &lt;&lt; <see cref="NodeBits"/>) | node</c>. The
/// founding replicas keep incarnation 0 (member id = node id, the layout of every cluster written before); each later
/// replica of a node in a shard takes the next incarnation of that node in that shard, handed out by the metadata
/// group (Cluster.ClusterMetadata.ReplicaIds), so every replica agrees on it, and a crash, a restart, a snapshot
/// or a leader change cannot rewind it. Everything that shows or acts on a node (status, routing, placement, events)
/// goes through <see cref="NodeOf"/>; only the Raft cores and the membership plan see member ids.
/// </summary>
public static class ReplicaIds
{
    /// <summary>Low bits that hold the node id: node ids run 1..<see cref="MaxNode"/>.</summary>
    public const int NodeBits = 16;
    public const int MaxNode = (1 << NodeBits) - 1;
    /// <summary>Incarnations of one node in one shard run 0..MaxIncarnation (the int stays positive).</summary>
    public const int MaxIncarnation = (1 << (31 - NodeBits)) - 1;

    /// <summary>The node that hosts member <paramref name="member"/> (0 for 0, "none").</summary>
    public static int NodeOf(int member) => member & MaxNode;

    public static int IncarnationOf(int member) => member >> NodeBits;

    /// <exception cref="ArgumentOutOfRangeException">The node or the incarnation does not fit.</exception>
    public static int Compose(int node, int incarnation)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(node, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(node, MaxNode);
        ArgumentOutOfRangeException.ThrowIfNegative(incarnation);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(incarnation, MaxIncarnation);
        return (incarnation << NodeBits) | node;
    }

    /// <summary>The member id a node's next replica of a shard takes, after <paramref name="previous"/> (its last member
    /// id there; the node id itself when it never had one recorded).</summary>
    public static int Next(int previous) => Compose(NodeOf(previous), IncarnationOf(previous) + 1);
}
