namespace Replication.Engine.Ring;

/// <summary>
/// Whether a node can be removed while every shard keeps its replication factor: the answer behind
/// Remove-ReplicationNode refusing without -Force (<see cref="PlacementPlanner.CheckRemoval"/>). Immutable.
/// </summary>
/// <param name="Node">The node asked about.</param>
/// <param name="CanKeepReplicationFactor">True when enough other live nodes can hold voters for every shard
/// to keep ReplicationFactor voters once the node's replicas have moved.</param>
/// <param name="ShardsHeld">Shards of which the node holds a replica (voter or learner): the moves its drain needs.</param>
/// <param name="NodesLeft">Other live nodes that can hold voters.</param>
/// <param name="ShardsLosingQuorum">Shards that would lose a live majority if the node were removed at once,
/// without moving its replicas first (what -Force risks while other replicas are down).</param>
/// <param name="KeepsZoneSpread">False when the remaining nodes span fewer zones than the shards need
/// (min(ReplicationFactor, zones before)), so some shards would hold two replicas in one zone.</param>
/// <param name="Reason">One sentence for the operator.</param>
public sealed record NodeRemovalCheck(int Node, bool CanKeepReplicationFactor, int ShardsHeld, int NodesLeft,
    int ShardsLosingQuorum, bool KeepsZoneSpread, string Reason);
