using Replication.Engine.Ring;

namespace Replication;

/// <summary>One node's part of the consistent-hash ring (Get-ReplicationRing): its tokens and their share of the hash space,
/// and what it holds and leads now. The shares of all nodes sum to 1; a node that holds no voters (leaving, learner-only)
/// has no tokens.</summary>
public sealed record ReplicationRingEntry
{
    public required string Cluster { get; init; }
    public required int Node { get; init; }
    public string? Zone { get; init; }
    public RingNodeState State { get; init; }
    /// <summary>True for a learner-only node (asynchronous replicas: it never votes or leads).</summary>
    public bool Learner { get; init; }
    public int Tokens { get; init; }
    /// <summary>Fraction of the hash space its tokens own, in [0, 1].</summary>
    public double Share { get; init; }
    /// <summary>Shards of which it holds a replica now (voter or learner).</summary>
    public int ShardsHeld { get; init; }
    /// <summary>Shards the ring places on it (where its replicas go once the moves under way are done).</summary>
    public int ShardsPlaced { get; init; }
    public int ShardsLed { get; init; }
    /// <summary>
    /// Bytes the node holds on disk: its data folder as it reports it (state, Raft log, events, with their WAL files), the
    /// same figure as Get-ReplicationNode's SizeBytes. Nodes holding the same shards differ by their logs and by WAL not yet
    /// checkpointed (a fresh 3-node cluster after 300 writes: 0.7-1.4 MB), so compare it across nodes with that in mind.
    /// </summary>
    public long Bytes { get; init; }
}
