using Replication.Engine.Raft;

namespace Replication.Simulation.Simulation;

/// <summary>
/// A deliberately broken system the simulator must catch ("mutants": they show the checks have
/// teeth). Core mutants switch an internal fault-injection flag of the real core
/// (<see cref="RaftMutation"/>); host mutants break the simulated host or its storage, where such
/// a bug would live in the product (NodeHost, RaftLogStore).
/// </summary>
public enum Mutant
{
    None,
    /// <summary>Core: commit by counting replicas of an old-term entry (no Figure 8 rule).</summary>
    CommitOldTerm,
    /// <summary>Core: a follower keeps conflicting entries instead of truncating them.</summary>
    FollowerKeepsConflicts,
    /// <summary>Storage: HardState.Vote is not saved (it reads back as 0 after a restart).</summary>
    VoteNotPersisted,
    /// <summary>Host: the leader answers reads from its local state at once, without ReadIndex or lease.</summary>
    ReadWithoutReadIndex,
    /// <summary>Host: a Ready's messages leave before its entries and hard state are durable.</summary>
    AckBeforePersist,
    /// <summary>
    /// Host: a joining node does not record the membership it learned from the leader's first append
    /// (Ready.Snapshot at index 0); after a restart it rebuilds its configuration from an empty base.
    /// </summary>
    JoinerMembershipNotRecorded,
    /// <summary>
    /// Host: after a pause, the node catches up on missed ticks as NodeHost did before the fix: one
    /// tick before handling what waited, and none of the others when more than ten were missed,
    /// so the lease is counted in delivered ticks and outlives real time.
    /// </summary>
    LeaseCountsDeliveredTicks,
    /// <summary>
    /// Environment: clocks drift far beyond the bound the lease is proved for (rates up to 50% off
    /// nominal, where the proof allows 3.7%; RaftNode.Read.cs): shows that the simulator reaches the
    /// window where drift makes a lease wrong, and that the lease check sees it.
    /// </summary>
    ClockDriftBeyondBound,
    /// <summary>Core: a follower accepts a stale Append (older term, delivered late or after a partition healed).</summary>
    StaleAppendAccepted,
    /// <summary>Core: the leader accepts a second membership change while one is uncommitted.</summary>
    ConcurrentConfChange,
    /// <summary>
    /// Ring mode, control loop: a replica moved away is dropped (its log and state machine deleted) as soon as the
    /// placement no longer names it, before the new replica caught up and before the leader took it out of the
    /// membership (the product waits for the leader to report it out: ClusterNode.Placement.cs).
    /// </summary>
    RemoveBeforeCaughtUp,
    /// <summary>
    /// Ring mode, host: a machine that takes a shard again hosts the new, empty replica under the raft id of its earlier,
    /// dropped one (as ClusterNode did before replica ids: a group member's id was the node id, and no tombstone) instead
    /// of the new member id the metadata gives it (Transport.ReplicaIds).
    /// </summary>
    ReplicaIdReused,
    /// <summary>
    /// Ring mode with <see cref="ReplicaIdReused"/>, and the core's rule that a replica knowing no configuration grants
    /// no vote switched off (RaftMutation.EmptyReplicaVotes): the empty replica then votes a stale member into leadership.
    /// </summary>
    EmptyReplicaVotes,
    /// <summary>
    /// Forced recovery: the rewrite cuts the survivor's log back to the commit index it knows (as a recovery built on the
    /// applied state would) but reports the end of its durable log as what survives: acknowledged writes inside the
    /// reported window are lost.
    /// </summary>
    ForcedRecoveryFromCommitted,
    /// <summary>
    /// Splits (Simulator.Splits.cs): the shard's ownership of a key is checked by the leader when it proposes a write,
    /// against the ranges it has applied, and not again when the entry applies (KvStore.Apply's WrongShard rule). A write
    /// proposed before the split entry applied on that leader, but ordered after it in the log, then lands in the old
    /// shard, which no longer serves the key: the write is acknowledged and lost.
    /// </summary>
    OwnershipCheckedAtProposal,
    /// <summary>
    /// Splits: the product before the fix (NodeHost.CreateSplitGroups / AddGroup): a split group is founded with its membership
    /// as an index-0 snapshot and the moved rows below its log. A replica of the old shard that installs a snapshot past the
    /// split entry never creates the group; its machine then hosts the new shard as an empty joining replica, the new leader
    /// sends it the log from index 1 (nothing is compacted yet), and it applies it on an empty state machine without the moved
    /// rows: its versions diverge. The simulator runs the product's way by default (a founding snapshot at index 1,
    /// ShardCommand.SplitFoundingIndex, so a joiner is sent a snapshot).
    /// </summary>
    SplitGroupFoundedAtZero,
    /// <summary>
    /// Splits: the product before snapshots carried the shard's hash range (SnapshotChunkCodec's range chunk, KvStore.RecordRange):
    /// a snapshot held the rows and the applied index only. A replica that missed the split entry and catches up on the old
    /// shard by a snapshot past it then owns every key of the shard again, applies an old-map write for the half split off that
    /// the other replicas refuse (WrongShard at apply), and its rows diverge from theirs. The simulator runs the product's way by
    /// default (the snapshot carries the shard's own range, and installing it records that range).
    /// </summary>
    SnapshotCarriesNoRange,
}

internal static class MutantExtensions
{
    public static RaftMutation CoreMutation(this Mutant m) => m switch
    {
        Mutant.CommitOldTerm => RaftMutation.CommitOldTermByCounting,
        Mutant.FollowerKeepsConflicts => RaftMutation.FollowerKeepsConflicts,
        Mutant.StaleAppendAccepted => RaftMutation.StaleAppendAccepted,
        Mutant.ConcurrentConfChange => RaftMutation.ConcurrentConfChange,
        Mutant.EmptyReplicaVotes => RaftMutation.EmptyReplicaVotes,
        _ => RaftMutation.None,
    };
}
