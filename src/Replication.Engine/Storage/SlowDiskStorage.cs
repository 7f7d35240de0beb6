using Replication.Engine.Raft;

namespace Replication.Engine.Storage;

/// <summary>
/// Fault injection for the fault drill (Verification/FaultDrill.cs): a decorator that delays every log
/// <see cref="INodeStorage.Save"/> by <see cref="Delay"/> before passing it on, as a slow disk (or a slow fsync)
/// would. Every node host wraps its storage in one; with a zero delay (the default) it only passes calls through.
/// <see cref="Delay"/> may be set from any thread; the storage calls come from the node loop thread.
/// </summary>
internal sealed class SlowDiskStorage(INodeStorage inner) : INodeStorage
{
    private long _delayTicks;

    /// <summary>Added before each Save; zero = none. Bounded to 10 s, so a mistake cannot hang a node for long.</summary>
    public TimeSpan Delay
    {
        get => TimeSpan.FromTicks(Interlocked.Read(ref _delayTicks));
        set => Interlocked.Exchange(ref _delayTicks, Math.Clamp(value.Ticks, 0, TimeSpan.FromSeconds(10).Ticks));
    }

    public void Save(IReadOnlyList<GroupWrite> writes)
    {
        var delay = Delay;
        if (delay > TimeSpan.Zero) Thread.Sleep(delay);
        inner.Save(writes);
    }

    public IReadOnlyList<EntryApplyResult> Apply(int shard, IReadOnlyList<LogEntry> entries) => inner.Apply(shard, entries);

    public void InstallSnapshotRows(int shard, long index, long term, ReadOnlyMemory<byte> chunk, bool first) => inner.InstallSnapshotRows(shard, index, term, chunk, first);

    public void CompleteSnapshotInstall(int shard, long index, long term, (ulong Start, ulong Last)? range) => inner.CompleteSnapshotInstall(shard, index, term, range);

    public void StageSnapshotRows(int shard, long index, long term, ReadOnlyMemory<byte> chunk, bool first) => inner.StageSnapshotRows(shard, index, term, chunk, first);

    public void BeginStagedSwap(int shard, long index, long term, (ulong Start, ulong Last)? range) => inner.BeginStagedSwap(shard, index, term, range);

    public bool SwapStagedRows(int shard, int maxKeys) => inner.SwapStagedRows(shard, maxKeys);

    public void Probe() => inner.Probe();
}
