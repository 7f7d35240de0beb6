using Microsoft.Data.Sqlite;
using Replication.Engine.Cluster;
using Xunit;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// A replica whose files fail their checks refuses to serve, the rest of the cluster goes on, and
/// the documented repair (Restore-ReplicationNode: out of its groups, stores discarded, back in as a new
/// replica) rebuilds it from its peers. A node folder that lost its identity is refused, never re-founded.
/// </summary>
public sealed class CorruptReplicaTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task A_corrupted_log_entry_keeps_that_node_down_and_it_is_rebuilt_from_its_peers()
    {
        await using var f = await ClusterFixture.StartAsync(shards: 1);
        for (int i = 0; i < 20; i++) await f.PutAsync($"k{i:D2}", $"v{i}");
        ClusterFixture.Eventually(() => f.Cluster.GetNodes().All(n => n.LagEntries == 0), "all replicas applied every write");
        await f.Cluster.RemoveAsync(deleteData: false);

        // Behind the engine's back: change one stored entry's bytes without fixing its checksum.
        string raftDb = Path.Combine(f.Path, "node-3", "raft.db");
        using (var conn = new SqliteConnection($"Data Source={raftDb};Pooling=False"))
        {
            conn.Open();
            using var cmd = conn.CreateCommand();
            cmd.CommandText = "UPDATE raft_log SET data = X'01' || data WHERE grp = 0 AND idx = 3";
            Assert.Equal(1, cmd.ExecuteNonQuery());
        }

        await f.ReopenAsync();
        var damaged = f.Cluster.GetNode(3);
        Assert.Equal(NodeState.Stopped, damaged.State);
        Assert.Contains("raft.db", damaged.StateReason);
        Assert.Contains("entry 3", damaged.StateReason);

        // The other two still form a quorum and serve everything.
        await f.PutAsync("after", "x");
        Assert.Equal("v7", (await f.Cluster.GetAsync("k07", ReadConsistency.Linearizable, ClusterFixture.Bound, None))?.Value);

        // Starting it as it is fails the same way; rebuilding it from its peers works.
        var again = await Assert.ThrowsAsync<StorageCorruptException>(() => f.Cluster.StartNodeAsync(3, None));
        Assert.Equal("StorageCorrupt", again.ErrorId);
        var result = await f.Cluster.RestoreNodeAsync(3, null, noWait: false, null, ClusterFixture.Bound, None);
        Assert.True(result.Completed, result.Message);
        ClusterFixture.Eventually(() => f.Cluster.GetShards()[0].Voters.Order().SequenceEqual([1, 2, 3]), "status shows node 3 a voter again");
        ClusterFixture.Eventually(() =>
        {
            var nodes = f.Cluster.GetNodes();
            return nodes.All(n => n.State == NodeState.Running && n.LagEntries == 0) && nodes.Select(n => n.AppliedIndex).Distinct().Count() == 1;
        }, "the rebuilt node caught up");
        var rebuilt = f.Cluster.Node(3)!.Host.Store.Scan(0, "").Select(k => (k.Key, k.Value, k.Version)).ToList();
        var leader = f.Cluster.Node(f.LeaderOf(0))!.Host.Store.Scan(0, "").Select(k => (k.Key, k.Value, k.Version)).ToList();
        Assert.Equal(leader, rebuilt);
        Assert.Equal(21, rebuilt.Count);
    }
}

public sealed class LostNodeFolderTests
{
    [Fact]
    public async Task A_node_folder_that_lost_its_identity_is_refused_not_founded_again()
    {
        await using var f = await ClusterFixture.StartAsync(shards: 1);
        await f.Cluster.StopNodeAsync(3, kill: false, CancellationToken.None);
        SqliteConnection.ClearAllPools();
        Directory.Delete(Path.Combine(f.Path, "node-3"), recursive: true);
        var refused = await Assert.ThrowsAsync<NodePathInUseException>(() => f.Cluster.StartNodeAsync(3, CancellationToken.None));
        Assert.Contains("Restore-ReplicationNode", refused.Message);
        Assert.Equal(2, f.Cluster.GetShards()[0].Voters.Count(v => v != 3) );
    }
}
