namespace Replication;

/// <summary>
/// The outcome of Invoke-ReplicationFailover for one shard: who led before and after, how long leadership took to
/// move, and what may have been lost. Planned (a switchover): <see cref="Duration"/> runs from the transfer request to
/// the new leader being known (writes to the shard wait, and do not fail, during it), and <see cref="LostEntries"/> is
/// 0. Forced (-AllowDataLoss): the survivor's log as it was when it became the only voter
/// (<see cref="SurvivorLastIndex"/>, <see cref="SurvivorLastTerm"/>) is what remains. An acknowledged write survives
/// exactly when its entry is in that log, which holds every entry committed at or below SurvivorLastIndex in a term up
/// to SurvivorLastTerm (Log Matching and Leader Completeness: the survivor's last entry came from the leader of
/// SurvivorLastTerm, whose log held everything committed before it). So what may be lost is what the lost majority
/// acknowledged after SurvivorLastIndex, or committed in a later term (Raft's Figure 8 case: a later leader committing
/// over an uncommitted entry the survivor kept). How much that was cannot be known from what survives, so
/// <see cref="LostEntries"/> is null (unknown, not 0); <see cref="Detail"/> gives a lower bound when the lost nodes'
/// last status reports showed a higher commit index. <see cref="LastIndex"/> and <see cref="LastTerm"/> are the end
/// of the new leader's log when it took over.
/// </summary>
public sealed record ReplicationFailover
{
    public string Cluster { get; init; } = "";
    public required int Shard { get; init; }
    /// <summary>The leader before (forced: the last leader the survivor knew of, 0 when none).</summary>
    public required int OldLeader { get; init; }
    public required int NewLeader { get; init; }
    public required FailoverKind Kind { get; init; }
    public required TimeSpan Duration { get; init; }
    /// <summary>Acknowledged entries lost: 0 for a planned switchover; null when unknown (a forced recovery).</summary>
    public long? LostEntries { get; init; }
    /// <summary>The term the new leader leads in.</summary>
    public long Term { get; init; }
    public long LastIndex { get; init; }
    public long LastTerm { get; init; }
    /// <summary>Forced recovery: the last index of the survivor's log before it became the only voter; everything at
    /// or below it that was acknowledged survives. Null for a planned switchover.</summary>
    public long? SurvivorLastIndex { get; init; }
    /// <summary>Forced recovery: the term of the survivor's last entry. Null for a planned switchover.</summary>
    public long? SurvivorLastTerm { get; init; }
    /// <summary>A sentence on what happened, and for a forced recovery on what may be lost.</summary>
    public string Detail { get; init; } = "";
}
