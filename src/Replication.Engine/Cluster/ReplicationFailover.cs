namespace Replication;

/// <summary>
/// The outcome of Invoke-ReplicationFailover for one shard: who led before and after, how long leadership took to
/// move (from the transfer request to the new leader being known: writes to the shard wait, and do not fail, during
/// it), and what may have been lost (<see cref="LostEntries"/>: always 0 for a planned switchover). <see cref="LastIndex"/>
/// and <see cref="LastTerm"/> are the end of the new leader's log when it took over.
/// </summary>
public sealed record ReplicationFailover
{
    public string Cluster { get; init; } = "";
    public required int Shard { get; init; }
    public required int OldLeader { get; init; }
    public required int NewLeader { get; init; }
    public required FailoverKind Kind { get; init; }
    public required TimeSpan Duration { get; init; }
    public long LostEntries { get; init; }
    /// <summary>The term the new leader leads in.</summary>
    public long Term { get; init; }
    public long LastIndex { get; init; }
    public long LastTerm { get; init; }
    /// <summary>A sentence on what happened, and for a forced recovery on what may be lost.</summary>
    public string Detail { get; init; } = "";
}
