namespace Replication.Engine.Cluster;

/// <summary>
/// A registered node: where it listens, and the join token that admitted it (a repeated join with it is answered
/// with the same id). <see cref="Rebuilding"/>: the node is being rebuilt (Restore-ReplicationNode, see
/// ClusterNode.Rebuild.cs) and is kept out of every group's membership until it reports that it dropped (or
/// replaced) its data for <see cref="RebuildEpoch"/>; <see cref="RebuildUpload"/> names the uploaded cold backup
/// it restores from, if any.
/// </summary>
public sealed record NodeEntry(string Endpoint, Guid Token)
{
    public bool Rebuilding { get; init; }
    /// <summary>Counts the rebuilds asked for this node; the node remembers the last one it carried out.</summary>
    public long RebuildEpoch { get; init; }
    public Guid? RebuildUpload { get; init; }
}
