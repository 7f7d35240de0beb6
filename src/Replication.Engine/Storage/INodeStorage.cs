using Replication.Engine.Raft;

namespace Replication.Engine.Storage;

/// <summary>
/// The writes a node host makes to its two stores, behind one narrow interface so that faults can be
/// injected by a decorator (as SQLite's test VFS fails a write or an fsync on a countdown; see
/// tests/.../FaultInjectionTests.cs). Contract, as the stores': <see cref="Save"/> is durable when it
/// returns and stores nothing if it throws; <see cref="Apply"/> commits entries with the applied
/// index in one transaction. Any exception from either stops the node (NodeHost.Loop): it never
/// acknowledges or applies past a failed write. Called from the node loop thread only.
/// </summary>
internal interface INodeStorage
{
    /// <summary>See <see cref="RaftLogStore.Save"/>.</summary>
    void Save(IReadOnlyList<GroupWrite> writes);

    /// <summary>See <see cref="KvStore.Apply"/>.</summary>
    IReadOnlyList<EntryApplyResult> Apply(int shard, IReadOnlyList<LogEntry> entries);
}

/// <summary>The real storage: raft.db and state.db. Not thread-safe (node loop only).</summary>
internal sealed class NodeStorage(RaftLogStore log, KvStore kv) : INodeStorage
{
    public void Save(IReadOnlyList<GroupWrite> writes) => log.Save(writes);

    public IReadOnlyList<EntryApplyResult> Apply(int shard, IReadOnlyList<LogEntry> entries) => kv.Apply(shard, entries);
}
