using Replication.Engine.Raft;
using Replication.Engine.Storage;
using Xunit;
using static Replication.Engine.Tests.Storage.KvStoreApplyTests;

namespace Replication.Engine.Tests.Storage;

/// <summary>Apply batches (KvStore.BeginApplyBatch): a loop pass's applies of several shards in one transaction.</summary>
public class KvStoreApplyBatchTests : IDisposable
{
    private readonly TempFolder _dir = new();
    private readonly KvStore _kv;

    public KvStoreApplyBatchTests() => _kv = OpenStore();

    /// <summary>The layout these tests run on (<see cref="KvStoreApplyBatchTestsFilePerShard"/> runs them all on the other).</summary>
    protected virtual StoreLayout Layout => StoreLayout.FilePerNode;

    private KvStore OpenStore() =>
        Layout == StoreLayout.FilePerNode ? new KvStore(_dir.File("state.db")) : new KvStore(_dir.File("shards"), StoreLayout.FilePerShard);

    public void Dispose()
    {
        GC.SuppressFinalize(this);
        _kv.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public void ShardsOfABatchBecomeVisibleTogetherAtItsCommit()
    {
        _kv.Apply(1, [Entry(1, 1, Put("a", "before"))]);
        Assert.Equal(1, _kv.Count(1));

        _kv.BeginApplyBatch();
        var first = Assert.Single(_kv.Apply(1, [Entry(2, 1, Put("a", "x")), Entry(3, 1, Put("b", "y"))]).Skip(1));
        Assert.Equal(new KvOpResult(true, 1, false, 0), Assert.Single(first.Results));
        // A later apply of the same shard in the batch sees the batch's own writes.
        Assert.Equal(new KvOpResult(true, 3, true, 2), Assert.Single(Assert.Single(_kv.Apply(1, [Entry(4, 1, Put("a", "z"))])).Results));
        _kv.Apply(2, [Entry(1, 1, Put("c", "w"))]);

        // Readers see the last commit only: values, applied indexes and key counts.
        Assert.Equal("before", _kv.Get(1, "a")!.Value);
        Assert.Null(_kv.Get(1, "b"));
        Assert.Null(_kv.Get(2, "c"));
        Assert.Equal(1, _kv.AppliedIndex(1));
        Assert.Equal(0, _kv.AppliedIndex(2));
        Assert.Equal(1, _kv.Count(1));

        _kv.CommitApplyBatch();
        Assert.Equal(new StoredKey("a", "z", 3, 4), _kv.Get(1, "a"));
        Assert.Equal("y", _kv.Get(1, "b")!.Value);
        Assert.Equal("w", _kv.Get(2, "c")!.Value);
        Assert.Equal(4, _kv.AppliedIndex(1));
        Assert.Equal(1, _kv.AppliedIndex(2));
        Assert.Equal(2, _kv.Count(1));
        Assert.Equal(1, _kv.Count(2));
    }

    [Fact]
    public void ARolledBackBatchLeavesNoTrace()
    {
        _kv.Apply(1, [Entry(1, 1, Put("a", "kept"))]);
        Assert.Equal(1, _kv.Count(1));
        _kv.BeginApplyBatch();
        _kv.Apply(1, [Entry(2, 1, Put("a", "lost"), Put("b", "lost"))]);
        _kv.Apply(2, [Entry(1, 1, Put("c", "lost"))]);
        _kv.RollbackApplyBatch();

        Assert.Equal(new StoredKey("a", "kept", 1, 1), _kv.Get(1, "a"));
        Assert.Null(_kv.Get(1, "b"));
        Assert.Null(_kv.Get(2, "c"));
        Assert.Equal(1, _kv.AppliedIndex(1));
        Assert.Equal(0, _kv.AppliedIndex(2));
        Assert.Equal(1, _kv.Count(1)); // the count known before is still right

        // The entries apply again afterwards, on their own, as if the batch had never been.
        Assert.Equal(new KvOpResult(true, 2, true, 1), Assert.Single(_kv.Apply(1, [Entry(2, 1, Put("a", "again"))])).Results[0]);
        Assert.Equal(2, _kv.AppliedIndex(1));
    }

    [Fact]
    public void AFailedApplyInABatchIsRolledBackWholeByTheCaller()
    {
        _kv.BeginApplyBatch();
        _kv.Apply(1, [Entry(1, 1, Put("a", "x"))]);
        Assert.Throws<ArgumentException>(() => _kv.Apply(2, [Entry(5, 1, Put("b", "y"))])); // a gap after applied index 0
        _kv.RollbackApplyBatch();
        Assert.Null(_kv.Get(1, "a"));
        Assert.Equal(0, _kv.AppliedIndex(1));
    }

    [Fact]
    public void OneBatchAtATimeAndNothingToCommitWithoutOne()
    {
        _kv.CommitApplyBatch(); // no batch: nothing happens
        _kv.RollbackApplyBatch();
        _kv.BeginApplyBatch();
        Assert.Throws<InvalidOperationException>(_kv.BeginApplyBatch);
        _kv.CommitApplyBatch();
        _kv.BeginApplyBatch(); // closed by the commit: a new one opens
        _kv.RollbackApplyBatch();
    }
}

/// <summary>Every test of <see cref="KvStoreApplyBatchTests"/> on the layout of a file per shard.</summary>
public sealed class KvStoreApplyBatchTestsFilePerShard : KvStoreApplyBatchTests
{
    protected override StoreLayout Layout => StoreLayout.FilePerShard;
}
