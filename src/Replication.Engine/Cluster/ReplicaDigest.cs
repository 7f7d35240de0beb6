namespace Replication;

/// <summary>One replica's Merkle root over a shard at the compared applied index.</summary>
public sealed record ReplicaDigest(int Node, bool Leader, string MerkleRoot, long KeyCount);
