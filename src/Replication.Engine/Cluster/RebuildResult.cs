namespace Replication.Engine.Cluster;

/// <summary>
/// What <see cref="IReplicationCluster.RestoreNodeAsync"/> did: <see cref="Completed"/> once the node is a voter of
/// its shards again; otherwise (asked not to wait, or the node is not running where this shell can start it)
/// <see cref="Message"/> says what remains. <see cref="Epoch"/> counts the rebuilds asked for the node.
/// </summary>
public sealed record RebuildResult(int Node, long Epoch, bool Completed, bool FromBackup, string Message);
