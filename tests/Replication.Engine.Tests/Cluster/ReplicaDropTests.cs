using Replication.Engine.Storage;
using Replication.Engine.Tests.Storage;
using Replication.Engine.Transport;
using Xunit;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// A replica that leaves its node (ReplaceGroupDataAsync) drops its log at once and its rows in steps between the loop's
/// other work (KvStore.BeginDropShard, NodeHost.Snapshots.cs); a replica of the same shard hosted on that node again
/// before the steps are done must not start beside the old rows, nor lose its own to the steps still to come.
/// </summary>
public sealed class ReplicaDropTests
{
    [Fact]
    public async Task A_shard_hosted_again_while_its_old_rows_are_being_dropped_starts_from_none_of_them()
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 1);
        var host = f.Cluster.Node(1)!.Host;
        const int shard = 7; // a shard this cluster does not have: its rows are put straight into node 1's store
        var rows = Enumerable.Range(0, 5_000).Select(i => new StoredKey($"old-{i:D5}", new string('v', 1_000), 1, 50)).ToArray();
        await host.RunHeldAsync(() =>
        {
            host.Store.InstallSnapshotRows(shard, 50, 1, SnapshotChunkCodec.Encode(rows, int.MaxValue).Single(), first: true);
            host.Store.CompleteSnapshotInstall(shard, 50, 1, null);
        });
        Assert.Equal(rows.Length, host.Store.Scan(shard, "").Count());

        // The drop, the new replica and a row of its own in one pass of the loop's inbox: all three before any drop step ran.
        // (The row is put straight into the store, like the old ones: the test is about the store, not the group's log.)
        var newRow = SnapshotChunkCodec.Encode(new[] { new StoredKey("new", "n", 1, 60) }, int.MaxValue).Single();
        Task dropped = Task.CompletedTask, written = Task.CompletedTask;
        Task<bool> added = Task.FromResult(false);
        int rowsWhenHosted = -1;
        await host.RunHeldAsync(() =>
        {
            dropped = host.ReplaceGroupDataAsync(shard, importFrom: null);
            added = host.AddGroupAsync(shard, ReplicaIds.Compose(1, 1), bootstrapVoters: new[] { ReplicaIds.Compose(1, 1) });
            written = host.RunHeldAsync(() =>
            {
                rowsWhenHosted = host.Store.Scan(shard, "").Count();
                host.Store.InstallSnapshotRows(shard, 60, 1, newRow, first: true);
                host.Store.CompleteSnapshotInstall(shard, 60, 1, null);
            });
        });
        await dropped;
        Assert.True(await added, "the new replica was refused");
        await written;
        Assert.Equal(0, rowsWhenHosted); // the old rows went before the new replica was hosted

        // The steps that were due do not come later: the new replica's row stays.
        for (int iteration = 0; iteration < 20; iteration++)
        {
            Assert.Single(host.Store.Scan(shard, ""));
            await host.RunHeldAsync(() => { }); // a loop iteration, with its drop steps if any were still due
        }
    }
}
