namespace Replication.Engine.Cluster;

/// <summary>One store's on-demand quick_check on one node (<see cref="IReplicationCluster.CheckStorageAsync"/>): the store's name in
/// the node's folder and its full path, its size, how long the check took, and what SQLite found (null: it passed).</summary>
public sealed record StoreCheck(int Node, string Store, string Path, long SizeBytes, double Seconds, string? Problem);
