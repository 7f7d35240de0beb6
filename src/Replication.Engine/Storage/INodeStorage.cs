using Replication.Engine.Raft;

namespace Replication.Engine.Storage;

/// <summary>
/// The writes a node host makes to its two stores, behind one narrow interface so that faults can be
/// injected by a decorator (as SQLite's test VFS fails a write or an fsync on a countdown; see
/// tests/.../FaultInjectionTests.cs). Contract, as the stores': <see cref="Save"/> is durable when it
/// returns and stores nothing if it throws; <see cref="Apply"/> commits entries with the applied
/// index in one transaction. Any exception from either stops the node (NodeHost.Loop): it never
/// acknowledges or applies past a failed write — except a full disk (SQLITE_FULL, ENOSPC), after which the
/// node stays up, refuses new writes and retries (NodeHost.DiskFull.cs): such a failure stores nothing, so the
/// write can simply be made again later. Called from the node loop thread only.
/// </summary>
internal interface INodeStorage
{
    /// <summary>See <see cref="RaftLogStore.Save"/>.</summary>
    void Save(IReadOnlyList<GroupWrite> writes);

    /// <summary>See <see cref="KvStore.Apply"/>.</summary>
    IReadOnlyList<EntryApplyResult> Apply(int shard, IReadOnlyList<LogEntry> entries);

    /// <summary>See <see cref="KvStore.InstallSnapshotRows"/>: one batch (one chunk) of a snapshot installed in batches.</summary>
    void InstallSnapshotRows(int shard, long index, long term, ReadOnlyMemory<byte> chunk, bool first);

    /// <summary>See <see cref="KvStore.CompleteSnapshotInstall"/>: durable when it returns.</summary>
    void CompleteSnapshotInstall(int shard, long index, long term, (ulong Start, ulong Last)? range);

    /// <summary>See <see cref="KvStore.StageSnapshotRows"/>: one chunk of a snapshot staged over a shard that holds data.</summary>
    void StageSnapshotRows(int shard, long index, long term, ReadOnlyMemory<byte> chunk, bool first);

    /// <summary>See <see cref="KvStore.BeginStagedSwap"/>: the commit point of a staged install, durable when it returns.</summary>
    void BeginStagedSwap(int shard, long index, long term, (ulong Start, ulong Last)? range);

    /// <summary>See <see cref="KvStore.SwapStagedRows"/>: one step of its swap; the last one durable when it returns.</summary>
    bool SwapStagedRows(int shard, int maxKeys);

    /// <summary>
    /// Commits one small write to each store that changes nothing (<see cref="RaftLogStore.Probe"/>,
    /// <see cref="KvStore.Probe"/>), to learn whether a full disk has room again. Throws as Save and Apply do.
    /// </summary>
    void Probe();
}

/// <summary>The real storage: raft.db and state.db. Not thread-safe (node loop only).</summary>
internal sealed class NodeStorage(RaftLogStore log, KvStore kv) : INodeStorage
{
    public void Save(IReadOnlyList<GroupWrite> writes) => log.Save(writes);

    public IReadOnlyList<EntryApplyResult> Apply(int shard, IReadOnlyList<LogEntry> entries) => kv.Apply(shard, entries);

    public void InstallSnapshotRows(int shard, long index, long term, ReadOnlyMemory<byte> chunk, bool first) => kv.InstallSnapshotRows(shard, index, term, chunk, first);

    public void CompleteSnapshotInstall(int shard, long index, long term, (ulong Start, ulong Last)? range) => kv.CompleteSnapshotInstall(shard, index, term, range);

    public void StageSnapshotRows(int shard, long index, long term, ReadOnlyMemory<byte> chunk, bool first) => kv.StageSnapshotRows(shard, index, term, chunk, first);

    public void BeginStagedSwap(int shard, long index, long term, (ulong Start, ulong Last)? range) => kv.BeginStagedSwap(shard, index, term, range);

    public bool SwapStagedRows(int shard, int maxKeys) => kv.SwapStagedRows(shard, maxKeys);

    public void Probe()
    {
        log.Probe();
        kv.Probe();
    }
}
