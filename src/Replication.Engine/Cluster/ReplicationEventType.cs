namespace Replication;

/// <summary>What a <see cref="ReplicationEvent"/> records. On the wire and in events.db by name: only ever add values.</summary>
// 64-bit on purpose: PowerShell's ConvertTo-Json writes 64-bit enums by name (issue 12, item 9).
public enum ReplicationEventType : long
{
    /// <summary>This node won an election and leads the shard; the sentence says why the election began
    /// (leader lost: election timeout, pre-vote won, or a leader transfer).</summary>
    LeaderElected = 0,
    /// <summary>This node stopped leading the shard: check-quorum step-down, a higher term, a transfer, removal.</summary>
    LeaderLost = 1,
    /// <summary>A planned switchover (Invoke-ReplicationFailover) moved a shard's leadership.</summary>
    Switchover = 2,
    /// <summary>A forced recovery (Invoke-ReplicationFailover -AllowDataLoss) made a survivor the shard's only voter.</summary>
    ForcedRecovery = 3,
    /// <summary>A shard's voters or learners changed (recorded by the shard's leader when the change applies).</summary>
    MembershipChanged = 4,
    NodeStarted = 5,
    /// <summary>A clean stop. A kill or crash leaves no such event: the next NodeStarted says the last stop was unclean.</summary>
    NodeStopped = 6,
    /// <summary>This node could not reach a peer for its status reports (and, later, reached it again).</summary>
    NodeUnreachable = 7,
    NodeReachable = 8,
    /// <summary>A store of this node failed its checks (the node refused to start or stopped).</summary>
    StorageCorrupt = 9,
    BackupTaken = 10,
    BackupRestored = 11,
    NodeSuspended = 12,
    NodeResumed = 13,
    /// <summary>The ring placed a shard's replicas on other nodes (a join, a leave, a pin): recorded by the metadata leader.</summary>
    ShardPlaced = 14,
    /// <summary>A shard split in two (Split-ReplicationShard or by itself): recorded by the coordinator.</summary>
    ShardSplit = 15,
    /// <summary>Remove-ReplicationNode marked a node leaving; its replicas move away.</summary>
    NodeLeaving = 16,
    /// <summary>A leaving node held nothing any more and was deregistered.</summary>
    NodeRemoved = 17,
}
