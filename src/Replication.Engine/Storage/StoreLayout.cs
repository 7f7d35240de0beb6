namespace Replication.Engine.Storage;

/// <summary>How a node keeps its state machine on disk (<see cref="KvStore"/>).</summary>
public enum StoreLayout
{
    /// <summary>Every shard the node hosts in one SQLite file, state.db: one transaction for a loop pass's applies of every
    /// shard. A shard's copy is a stream of its rows.</summary>
    FilePerNode,

    /// <summary>Each shard in a SQLite file of its own, shards/shard-N.db: a replica that moves away is a file deleted, a
    /// split writes the new half into a file of its own, and each shard's applies commit on their own.</summary>
    FilePerShard,
}
