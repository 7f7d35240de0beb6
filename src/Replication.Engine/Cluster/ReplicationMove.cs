using Replication.Engine.Ring;

namespace Replication;

/// <summary>
/// One replica move between a shard's current membership and the ring's placement (Invoke-ReplicationRebalance): the
/// replica on <see cref="FromNode"/> goes to <see cref="ToNode"/> (0 on either side: a replica only added or only
/// removed). <see cref="Step"/> is the Raft membership change the move needs next (add learner, promote, remove).
/// </summary>
public sealed record ReplicationMove
{
    public required string Cluster { get; init; }
    public required int Shard { get; init; }
    public int FromNode { get; init; }
    public int ToNode { get; init; }
    public ShardMoveStep Step { get; init; }
    public MoveReason Reason { get; init; }
}
