namespace Replication.Engine.Storage;

/// <summary>How a node keeps its state machine on disk (<see cref="KvStore"/>).</summary>
// 64-bit so that PowerShell's ConvertTo-Json writes it by name, as NodeState (ReplicationNode.StoreLayout).
public enum StoreLayout : long
{
    /// <summary>Every shard the node hosts in one SQLite file, state.db: one transaction for a loop pass's applies of every
    /// shard. A shard's copy is a stream of its rows.</summary>
    FilePerNode = 0,

    /// <summary>Each shard in a SQLite file of its own, shards/shard-N.db: a replica that moves away is a file deleted, a
    /// split writes the new half into a file of its own, and each shard's applies commit on their own.</summary>
    FilePerShard = 1,
}
