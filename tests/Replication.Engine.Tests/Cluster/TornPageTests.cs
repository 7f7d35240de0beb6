using Microsoft.Data.Sqlite;
using Replication.Engine.Cluster;
using Xunit;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// A torn or zeroed page in a node's files (issue 13, item 2): found when the node starts (SQLite's quick_check over
/// both files, NodeHost.StartAsync), the node refuses to serve it while its peers go on, and Restore-ReplicationNode
/// rebuilds it from them. The page is zeroed behind the engine's back while the cluster is stopped, as a torn write
/// or a bad sector would leave it.
/// </summary>
public sealed class TornPageTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Theory]
    [InlineData("state.db")]
    [InlineData("raft.db")]
    public async Task A_zeroed_page_keeps_that_node_down_and_it_is_rebuilt_from_its_peers(string file)
    {
        await using var f = await ClusterFixture.StartAsync(shards: 1);
        string payload = new('v', 300);
        for (int i = 0; i < 300; i++) await f.PutAsync($"k{i:D3}", $"{i}-{payload}");
        ClusterFixture.Eventually(() => f.Cluster.GetNodes().All(n => n.LagEntries == 0), "all replicas applied every write");
        await f.Cluster.RemoveAsync(deleteData: false);
        SqliteConnection.ClearAllPools();

        // Zero one in-use page in the middle of the file (every page is in use: nothing was ever deleted).
        string path = Path.Combine(f.Path, "node-3", file);
        long pageSize, pages;
        using (var conn = new SqliteConnection($"Data Source={path};Pooling=False"))
        {
            conn.Open();
            pageSize = Scalar(conn, "PRAGMA page_size");
            pages = Scalar(conn, "PRAGMA page_count");
            Assert.Equal(0, Scalar(conn, "PRAGMA freelist_count"));
        }
        Assert.False(File.Exists(path + "-wal") && new FileInfo(path + "-wal").Length > 0, "the clean stop checkpointed the WAL into the file");
        Assert.True(pages >= 8, $"{file} has {pages} pages");
        long page = pages / 2; // 1-based page numbers: this is neither the header page nor the last
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Write))
        {
            stream.Position = (page - 1) * pageSize;
            stream.Write(new byte[pageSize]);
        }

        await f.ReopenAsync();
        var damaged = f.Cluster.GetNode(3);
        Assert.Equal(NodeState.Stopped, damaged.State);
        Assert.Contains(file, damaged.StateReason);

        // The other two go on; starting the damaged one again fails the same way; a rebuild from its peers brings it back.
        await f.PutAsync("after", "x");
        Assert.Equal($"7-{payload}", (await f.Cluster.GetAsync("k007", ReadConsistency.Linearizable, ClusterFixture.Bound, None))?.Value);
        var again = await Assert.ThrowsAsync<StorageCorruptException>(() => f.Cluster.StartNodeAsync(3, None));
        Assert.Contains(file, again.Message);
        var result = await f.Cluster.RestoreNodeAsync(3, null, noWait: false, null, ClusterFixture.Bound, None);
        Assert.True(result.Completed, result.Message);
        ClusterFixture.Eventually(() =>
        {
            var nodes = f.Cluster.GetNodes();
            return nodes.All(n => n.State == NodeState.Running && n.LagEntries == 0) && nodes.Select(n => n.AppliedIndex).Distinct().Count() == 1;
        }, "the rebuilt node caught up");
        var rebuilt = f.Cluster.Node(3)!.Host.Store.Scan(0, "").Select(k => (k.Key, k.Value, k.Version)).ToList();
        var leader = f.Cluster.Node(f.LeaderOf(0))!.Host.Store.Scan(0, "").Select(k => (k.Key, k.Value, k.Version)).ToList();
        Assert.Equal(leader, rebuilt);
        Assert.Equal(301, rebuilt.Count);
    }

    private static long Scalar(SqliteConnection conn, string sql)
    {
        using var cmd = conn.CreateCommand();
        cmd.CommandText = sql;
        return Convert.ToInt64(cmd.ExecuteScalar());
    }
}
