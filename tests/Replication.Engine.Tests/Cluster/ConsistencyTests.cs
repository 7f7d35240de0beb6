using Replication.Engine.Cluster;
using Replication.Engine.Storage;
using Replication.Engine.Tests.Storage;
using Xunit;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// Test-ReplicationConsistency's engine: replicas compared by Merkle tree at one applied index,
/// and a row corrupted behind the engine's back found as exactly its key range and key.
/// </summary>
public sealed class ConsistencyTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task Replicas_compared_at_one_applied_index_agree_even_while_writes_continue()
    {
        await using var f = await ClusterFixture.StartAsync(shards: 2);
        var acked = new List<ReplicationKey>();
        await BackupTests.WriteBatchAsync(f, acked, 0, 300);
        using var stop = new CancellationTokenSource();
        var writer = Task.Run(async () =>
        {
            for (int round = 1; round <= 2000 && !stop.IsCancellationRequested; round++)
                await BackupTests.WriteBatchAsync(f, acked, round, 10);
        });
        try
        {
            for (int i = 0; i < 3; i++)
            {
                var checks = await f.Cluster.CheckConsistencyAsync(null, ClusterFixture.Bound, None);
                Assert.Equal(2, checks.Count);
                foreach (var c in checks)
                {
                    Assert.True(c.Consistent, string.Join("; ", c.DivergentRanges));
                    Assert.Equal(ConsistencyStatus.Consistent, c.Status);
                    Assert.Equal(3, c.Replicas.Count);
                    Assert.Single(c.Replicas.Select(r => r.MerkleRoot).Distinct());
                    Assert.True(c.AppliedIndex > 0);
                    Assert.True(c.Leaves > 1);
                }
            }
        }
        finally
        {
            stop.Cancel();
            await writer;
        }
    }

    [Fact]
    public async Task A_row_changed_behind_the_engines_back_is_reported_as_its_key_range_on_that_replica()
    {
        await using var f = await ClusterFixture.StartAsync(shards: 2);
        var writes = Enumerable.Range(0, 400).Select(i => new KeyWrite($"user:{i:D4}", $"v{i}")).ToArray();
        var results = await f.Cluster.WriteAsync(writes, WriteConcern.Majority, ClusterFixture.Bound, None);
        Assert.All(results, r => Assert.Null(r.Error));
        var victim = results[137].Record!;
        int leader = f.LeaderOf(victim.Shard);
        int follower = f.Cluster.GetShards()[victim.Shard].Voters.First(v => v != leader);
        ClusterFixture.Eventually(() => f.Cluster.GetNodes().All(n => n.LagEntries == 0), "replicas caught up");
        // LagEntries comes from the nodes' reports, which may be a status period old: wait for the row itself too (a CI run
        // tampered before the follower had applied it, and the UPDATE below changed nothing).
        string stateDb = Path.Combine(f.Cluster.GetNode(follower).DataPath, "state.db");
        ClusterFixture.Eventually(() =>
        {
            using var raw = TempFolder.Raw(stateDb);
            using var cmd = raw.CreateCommand();
            cmd.CommandText = "SELECT count(*) FROM kv WHERE shard = @s AND key = @k"; // alone: a PRAGMA before it would be the scalar
            cmd.Parameters.AddWithValue("@s", victim.Shard);
            cmd.Parameters.AddWithValue("@k", victim.Key);
            return Convert.ToInt64(cmd.ExecuteScalar()) == 1;
        }, $"node {follower} applied {victim.Key}");

        // Tamper with one row of one follower's state.db through a raw connection.
        using (var raw = TempFolder.Raw(stateDb))
        using (var cmd = raw.CreateCommand())
        {
            cmd.CommandText = "PRAGMA busy_timeout=5000; UPDATE kv SET value = 'tampered' WHERE shard = @s AND key = @k";
            cmd.Parameters.AddWithValue("@s", victim.Shard);
            cmd.Parameters.AddWithValue("@k", victim.Key);
            Assert.Equal(1, cmd.ExecuteNonQuery());
        }

        var check = Assert.Single(await f.Cluster.CheckConsistencyAsync(victim.Shard, ClusterFixture.Bound, None));
        Assert.False(check.Consistent);
        Assert.Equal(ConsistencyStatus.Divergent, check.Status);
        var range = Assert.Single(check.DivergentRanges);
        Assert.Equal(follower, range.Node);
        Assert.Equal(new[] { victim.Key }, range.Keys);
        Assert.True(range.StartKey is null || KvStore.CompareKeys(range.StartKey, victim.Key) <= 0);
        Assert.True(range.EndKey is null || KvStore.CompareKeys(victim.Key, range.EndKey) < 0);
        Assert.True(range.StartKey is not null || range.EndKey is not null, "the range is narrower than the whole shard");
        var roots = check.Replicas.ToDictionary(r => r.Node, r => r.MerkleRoot);
        Assert.NotEqual(roots[leader], roots[follower]);
        Assert.Equal(2, check.Replicas.Select(r => r.MerkleRoot).Distinct().Count());

        // The other shard is untouched.
        Assert.True(Assert.Single(await f.Cluster.CheckConsistencyAsync(1 - victim.Shard, ClusterFixture.Bound, None)).Consistent);
        await Assert.ThrowsAsync<ShardNotFoundException>(() => f.Cluster.CheckConsistencyAsync(9, ClusterFixture.Bound, None));
    }

    [Fact]
    public void Merkle_leaf_counts_are_powers_of_two_with_no_empty_reference_leaf()
    {
        Assert.Equal(1, MerkleTree.LeafCountFor(0));
        Assert.Equal(1, MerkleTree.LeafCountFor(1));
        Assert.Equal(1, MerkleTree.LeafCountFor(32));
        Assert.Equal(2, MerkleTree.LeafCountFor(33));
        Assert.Equal(16, MerkleTree.LeafCountFor(500));
        Assert.Equal(MerkleTree.MaxLeaves, MerkleTree.LeafCountFor(10_000_000));
    }
}
