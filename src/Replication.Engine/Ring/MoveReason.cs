namespace Replication.Engine.Ring;

/// <summary>Why a replica moves. Values are explicit and append-only.</summary>
public enum MoveReason : long
{
    /// <summary>The replica's node was removed (or is unknown): the shard is short of a live replica.</summary>
    NodeRemoved = 0,

    /// <summary>The replica's node is down and the placement no longer wants it (for example it is
    /// also being drained or its place went to a pin).</summary>
    NodeDown = 1,

    /// <summary>The replica's node is draining (Remove-ReplicationNode).</summary>
    NodeDraining = 2,

    /// <summary>The shard has fewer voters than the placement wants; a replica is added, none removed.</summary>
    UnderReplicated = 3,

    /// <summary>The ring's placement changed (a node joined or left elsewhere, a pin, a split).</summary>
    Rebalance = 4,

    /// <summary>A learner added for an earlier placement that the current one no longer wants.</summary>
    Abandoned = 5,
}
