using Replication.Engine.Storage;
using Xunit;

namespace Replication.Engine.Tests.Storage;

/// <summary>
/// A snapshot stored in batches (KvStore.InstallSnapshotRows, NodeHost.Snapshots.cs): the rows become the shard's, with its
/// applied index, only at CompleteSnapshotInstall; an install a crash interrupted is discarded when the store is next opened
/// for a node (DiscardPartialInstalls), and leaves the shard as empty as it was.
/// </summary>
public sealed class KvStoreInstallTests
{
    private static StoredKey Row(int i) => new($"k{i:D4}", new string('v', 100), 1, 7);

    [Fact]
    public void A_batched_install_counts_only_once_complete_and_an_interrupted_one_is_discarded()
    {
        using var dir = new TempFolder();
        string path = dir.File("state.db");
        using (var kv = new KvStore(path))
        {
            kv.InstallSnapshotRows(0, 500, 3, Enumerable.Range(0, 10).Select(Row).ToArray(), first: true);
            kv.InstallSnapshotRows(0, 500, 3, Enumerable.Range(10, 10).Select(Row).ToArray(), first: false);
            kv.CompleteSnapshotInstall(0, 500, 3);
            Assert.Equal(500, kv.AppliedIndex(0));
            Assert.Equal(20, kv.Scan(0, "").Count());
            Assert.Empty(kv.DiscardPartialInstalls());

            // Shard 1: two batches in, then the node "crashes" (the store is closed without completing).
            kv.InstallSnapshotRows(1, 900, 4, Enumerable.Range(0, 10).Select(Row).ToArray(), first: true);
            kv.InstallSnapshotRows(1, 900, 4, Enumerable.Range(10, 5).Select(Row).ToArray(), first: false);
            Assert.Equal(0, kv.AppliedIndex(1));
            Assert.Equal(15, kv.Scan(1, "").Count());
        }
        using (var kv = new KvStore(path))
        {
            Assert.Equal(new[] { 1 }, kv.DiscardPartialInstalls());
            Assert.Empty(kv.Scan(1, ""));
            Assert.Equal(0, kv.AppliedIndex(1));
            Assert.Equal(20, kv.Scan(0, "").Count()); // the completed install is untouched
            Assert.Equal(500, kv.AppliedIndex(0));
            Assert.Empty(kv.DiscardPartialInstalls());
            // Completing an install that is not in progress is a bug in the caller, not a silent no-op.
            Assert.Throws<InvalidOperationException>(() => kv.CompleteSnapshotInstall(1, 900, 4));
        }
    }

    [Fact]
    public void A_first_batch_replaces_what_an_earlier_attempt_left_and_a_drop_removes_the_marker()
    {
        using var dir = new TempFolder();
        using var kv = new KvStore(dir.File("state.db"));
        kv.InstallSnapshotRows(2, 900, 4, Enumerable.Range(0, 10).Select(Row).ToArray(), first: true);
        // A new attempt (the earlier one abandoned: a full disk) starts over.
        kv.InstallSnapshotRows(2, 950, 5, Enumerable.Range(100, 3).Select(Row).ToArray(), first: true);
        kv.CompleteSnapshotInstall(2, 950, 5);
        Assert.Equal(new[] { "k0100", "k0101", "k0102" }, kv.Scan(2, "").Select(k => k.Key));
        kv.InstallSnapshotRows(3, 10, 1, new[] { Row(1) }, first: true);
        kv.DropShard(3);
        Assert.Empty(kv.DiscardPartialInstalls());
    }

    [Fact]
    public void A_version_3_file_is_migrated_at_open()
    {
        using var dir = new TempFolder();
        string path = dir.File("state.db");
        new KvStore(path).Dispose();
        TempFolder.Exec(path, "DROP TABLE snapshot_install; PRAGMA user_version = 3");
        using (var kv = new KvStore(path))
        {
            Assert.Empty(kv.DiscardPartialInstalls());
            Assert.Equal(KvStore.SchemaVersion.ToString(System.Globalization.CultureInfo.InvariantCulture), kv.WriterPragma("user_version"));
        }
    }
}
