namespace Replication.Engine.Cluster;

/// <summary>
/// A registered node: where it listens, and the join token that admitted it (a repeated join with it is answered
/// with the same id). <see cref="Rebuilding"/>: the node is being rebuilt (Restore-ReplicationNode, see
/// ClusterNode.Rebuild.cs) and is kept out of every group's membership until it reports that it dropped (or
/// replaced) its data for <see cref="RebuildEpoch"/>; <see cref="RebuildUpload"/> names the uploaded cold backup
/// it restores from, if any. <see cref="Zone"/>: a failure-domain label (the ring puts a shard's replicas in distinct
/// zones first). <see cref="Learner"/>: the node holds non-voting replicas only (asynchronous replication).
/// <see cref="Suspended"/>: maintenance (Suspend-ReplicationNode): it leads nothing and does not campaign, but still
/// votes and replicates. <see cref="Leaving"/>: Remove-ReplicationNode is moving its replicas away; once it holds none
/// it is deregistered.
/// </summary>
public sealed record NodeEntry(string Endpoint, Guid Token)
{
    public bool Rebuilding { get; init; }
    /// <summary>Counts the rebuilds asked for this node; the node remembers the last one it carried out.</summary>
    public long RebuildEpoch { get; init; }
    public Guid? RebuildUpload { get; init; }
    public string? Zone { get; init; }
    public bool Learner { get; init; }
    public bool Suspended { get; init; }
    public bool Leaving { get; init; }
}
