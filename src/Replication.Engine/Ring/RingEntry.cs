namespace Replication.Engine.Ring;

/// <summary>
/// One node's part of the ring: the data behind Get-ReplicationRing (ReplicationRingEntry). Immutable.
/// </summary>
/// <param name="Node">The node id.</param>
/// <param name="Zone">Its zone label, or null.</param>
/// <param name="State">Its state.</param>
/// <param name="Tokens">Tokens it has on the ring (0 for a node that holds no voters: draining, removed, learner-only).</param>
/// <param name="Share">Fraction of the hash space its tokens own, in [0, 1]; the shares of all nodes sum to 1.</param>
/// <param name="ShardsHeld">Shards of which it holds a replica (voter or learner) in the given placement.</param>
/// <param name="ShardsLed">Shards it leads, from the given leaders.</param>
/// <param name="Bytes">Sum of the given sizes of the shards it holds.</param>
public sealed record RingEntry(int Node, string? Zone, RingNodeState State, int Tokens, double Share, int ShardsHeld, int ShardsLed, long Bytes);
