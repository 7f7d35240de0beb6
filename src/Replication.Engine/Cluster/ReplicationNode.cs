namespace Replication;

/// <summary>
/// A snapshot of one node's status. A node hosts several shards (Raft groups): <see cref="Term"/> is
/// the highest term among them, <see cref="CommitIndex"/> and <see cref="AppliedIndex"/> are summed
/// over the hosted shards (so two caught-up replicas of the same shards show equal values), and
/// <see cref="LagEntries"/> is the sum of how far each hosted shard's applied index trails its leader's commit index, and
/// <see cref="LagSeconds"/> how long the furthest-behind of them has been behind: the seconds since that replica last had
/// applied every entry it knew committed (0 while caught up; sampled every status period, 250 ms, so that is its
/// precision). <see cref="LagEntries"/> is null while the lag of some hosted replica is not known: the node does not
/// lead that shard and has had no fresh report (2 s) from a peer hosting it; or while the node, just started, is still
/// opening the shards it holds. So a node just started, or cut off from its peers, shows no lag rather than a 0 it cannot
/// vouch for (a runbook waiting for LagEntries -eq 0 waits until it knows).
/// </summary>
public sealed record ReplicationNode
{
    public required string Cluster { get; init; }
    public required int Id { get; init; }
    public required string Endpoint { get; init; }
    public required NodeState State { get; init; }
    /// <summary>Voter, or Learner: a node that holds non-voting copies of every shard (asynchronous replication), counts
    /// toward no quorum and leads nothing (its lag is <see cref="LagEntries"/> and <see cref="LagSeconds"/>).</summary>
    public NodeRole Role { get; init; }
    /// <summary>The node's failure-domain label (the ring puts a shard's voters in distinct zones first); null = none.</summary>
    public string? Zone { get; init; }
    public int ShardsLed { get; init; }
    public int ShardsHosted { get; init; }
    public long Term { get; init; }
    public long CommitIndex { get; init; }
    public long AppliedIndex { get; init; }
    public long? LagEntries { get; init; }
    public double LagSeconds { get; init; }
    /// <summary>When this node last heard from its leader (or, as leader, from a quorum); null if never.</summary>
    public DateTimeOffset? LastContact { get; init; }
    public required string DataPath { get; init; }
    public long SizeBytes { get; init; }
    /// <summary>How the node keeps its state machine: one state.db (FilePerNode, the default) or a SQLite file per shard
    /// (FilePerShard, whose replicas move as files: README, "The ring"). A data folder keeps the layout it was created
    /// with. Null: the node has not reported it (never heard from).</summary>
    public Engine.Storage.StoreLayout? StoreLayout { get; init; }
    /// <summary>Bytes free for this node on the volume holding its data folder (null when the node could not tell).</summary>
    public long? DiskFreeBytes { get; init; }
    /// <summary>The node's wall clock (UTC) as of when the answering node built this status: read directly for itself, and
    /// for a peer its clock in its last report advanced by the time since that report arrived. Compared with the caller's
    /// clock it shows the node's offset to within a round trip (Test-ReplicationCluster's ClockOffset). Null: never heard from.</summary>
    public DateTimeOffset? Clock { get; init; }
    /// <summary>The node's disk is full: it refuses writes until a probe write succeeds (StateReason says since when).</summary>
    public bool DiskFull { get; init; }
    /// <summary>Why the node is in its current state, and since when (Rachis-style).</summary>
    public string? StateReason { get; init; }
    public DateTimeOffset? StateSince { get; init; }
    /// <summary>The node is being rebuilt (Restore-ReplicationNode): out of every group until it dropped or replaced its data.</summary>
    public bool Rebuilding { get; init; }
    /// <summary>In maintenance (Suspend-ReplicationNode): it hands its leaderships away and does not campaign, but still votes and replicates.</summary>
    public bool Suspended { get; init; }
    /// <summary>Rebuild bookkeeping (ClusterNode.Rebuild.cs): the last rebuild asked for this node, the backup it restores from, and the last one it carried out.</summary>
    public long RebuildEpoch { get; init; }
    public Guid? RebuildUpload { get; init; }
    public long RebuiltEpoch { get; init; }
}
