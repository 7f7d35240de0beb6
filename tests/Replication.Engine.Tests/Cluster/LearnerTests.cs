using Replication.Engine.Cluster;
using Xunit;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// Asynchronous replicas (issue 10 item 4): a node added with -Learner (AddNodeAsync learner: true) follows every shard
/// as a non-voting replica, counts toward no quorum, shows its lag, and refuses a stale read with a lag bound while it
/// is behind. It is made to fall behind deterministically by cutting its Raft traffic off (NodeHost.Faults.cs): it then
/// receives no entries while its status polls (another channel) still tell it the leaders' commit indexes.
/// </summary>
public sealed class LearnerTests
{
    [Fact]
    public async Task A_learner_follows_every_shard_counts_toward_no_quorum_and_refuses_a_stale_read_beyond_its_lag_bound()
    {
        // Every log entry any node persists passes here: a ConfChange that makes node 4 (the learner) a voter of any group,
        // the metadata group included, would be seen even if it were undone a moment later.
        var voterChanges = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 2,
            configure: o => o with { StorageDecorator = (_, inner) => new ConfChangeObserver(inner, learner: 4, voterChanges) });
        var added = await f.Cluster.AddNodeAsync(zone: null, learner: true, CancellationToken.None);
        int learner = added.Id;
        Assert.Equal((4, NodeRole.Learner), (learner, added.Role));
        // The role travels with the join: the node is learner-only from its first registry entry, so the ring never placed a
        // voter on it (it used to join as a voter first, then be demoted).
        ClusterFixture.Eventually(() => f.Cluster.GetShards() is { Count: 2 } shards
            && shards.All(s => s.Learners.SequenceEqual(new[] { learner }) && s.Voters.Count == 3 && !s.Voters.Contains(learner) && !s.Placement.Contains(learner)),
            $"node {learner} is a learner (and no voter) of both shards", TimeSpan.FromSeconds(60));
        var placements = await f.Cluster.GetEventsAsync(null, new[] { ReplicationEventType.ShardPlaced }, Array.Empty<int>(), Array.Empty<int>(), null, ClusterFixture.Bound, CancellationToken.None);
        Assert.NotEmpty(placements.Events); // the node's join re-placed nothing, but the founding placements are recorded
        Assert.DoesNotContain(placements.Events, e => PlacedOn(e.Message).Contains(learner));
        Assert.Empty(voterChanges);
        // A shard counts as held once its replica has its data: the membership above can show the learner before its
        // snapshot is stored (an install rests between its slices, NodeHost.Snapshots.cs), so the ring is awaited.
        await ClusterFixture.EventuallyAsync(async () => (await f.Cluster.GetRingAsync(CancellationToken.None))
            .Any(e => e.Node == learner && e.Learner && e.Tokens == 0 && e.ShardsHeld == 2 && e.ShardsLed == 0),
            $"the ring shows node {learner} as a learner holding both shards and leading none", ClusterFixture.Bound);

        await f.PutAsync("k", "v1");
        var node = f.Cluster.Node(learner)!;
        ClusterFixture.Eventually(() => node.GetNode(learner) is { LagEntries: 0, ShardsHosted: 2 }, $"learner {learner} hosts both shards and caught up");
        // Its lag is judged against the commit indexes its status polls bring, a moment behind the write: wait for the value.
        ReplicationKey? read = null;
        await ClusterFixture.EventuallyAsync(async () => (read = await node.GetAsync("k", ReadConsistency.Stale, ClusterFixture.Bound, CancellationToken.None, maxLag: 0)) is not null,
            $"learner {learner} serves the first write", ClusterFixture.Bound);
        Assert.Equal(("v1", learner, 0L), (read!.Value, read.ReadFrom, read.LagEntries));

        // No quorum counts it: with the learner and one voter down, two of three voters remain and writes still commit.
        // Were it a voter, two of four replicas would be no majority.
        int shard = f.Cluster.GetShards().First(s => s.Leader != 0).Id;
        int voterDown = f.Cluster.GetShards().First(s => s.Id == shard).Voters.First(v => v != f.LeaderOf(shard));
        await f.Cluster.StopNodeAsync(learner, kill: true, CancellationToken.None);
        await f.Cluster.StopNodeAsync(voterDown, kill: true, CancellationToken.None);
        for (int i = 0; i < 4; i++) await f.PutAsync($"quorum-{i}", "x");
        await f.Cluster.StartNodeAsync(voterDown, CancellationToken.None);
        await f.Cluster.StartNodeAsync(learner, CancellationToken.None);
        node = f.Cluster.Node(learner)!;
        ClusterFixture.Eventually(() => node.GetNode(learner) is { LagEntries: 0, ShardsHosted: 2 }, $"learner {learner} caught up after its restart");

        // Behind: cut off from every voter, it receives no entries while the writes go on.
        node.Host.CutOff(f.Cluster.GetNodes().Select(n => n.Id).Where(id => id != learner));
        for (int i = 2; i <= 6; i++) await f.PutAsync("k", "v" + i);
        ClusterFixture.Eventually(() => node.GetNode(learner).LagEntries >= 5, $"learner {learner} knows it is 5 entries behind");
        ClusterFixture.Eventually(() => node.GetNode(learner).LagSeconds >= 0.5, $"learner {learner} has been behind for half a second");
        ClusterFixture.Eventually(() => f.Cluster.GetNodes().First(n => n.Id == learner).LagEntries >= 5, "the cluster's status shows the learner's lag");
        var refused = await Assert.ThrowsAsync<ReplicaTooStaleException>(() =>
            node.GetAsync("k", ReadConsistency.Stale, ClusterFixture.Bound, CancellationToken.None, maxLag: 2));
        Assert.Equal((learner, "ReplicaTooStale"), (refused.Node, refused.ErrorId));
        Assert.True(refused.LagEntries >= 5, $"lag {refused.LagEntries}");
        var old = await node.GetAsync("k", ReadConsistency.Stale, ClusterFixture.Bound, CancellationToken.None, maxLag: 1000);
        Assert.Equal(("v1", learner), (old!.Value, old.ReadFrom));

        node.Host.CutOff(Array.Empty<int>());
        ClusterFixture.Eventually(() => node.GetNode(learner) is { LagEntries: 0, LagSeconds: 0 }, $"learner {learner} caught up");
        ReplicationKey? fresh = null;
        await ClusterFixture.EventuallyAsync(async () => (fresh = await node.GetAsync("k", ReadConsistency.Stale, ClusterFixture.Bound, CancellationToken.None, maxLag: 0))?.Value == "v6",
            $"learner {learner} serves the last write", ClusterFixture.Bound);
        Assert.Equal(("v6", learner, 0L), (fresh!.Value, fresh.ReadFrom, fresh.LagEntries));
        Assert.Empty(voterChanges);
    }

    /// <summary>The nodes of a ShardPlaced event's sentence ("The ring placed shard 1 on nodes 1, 2, 3 (it was on ...).").</summary>
    private static int[] PlacedOn(string message)
    {
        var m = System.Text.RegularExpressions.Regex.Match(message, @"on nodes ([0-9, ]+) \(");
        Assert.True(m.Success, message);
        return m.Groups[1].Value.Split(", ").Select(int.Parse).ToArray();
    }

    /// <summary>Passes storage through, noting every persisted ConfChange entry that adds or promotes <paramref name="learner"/> as a voter.</summary>
    private sealed class ConfChangeObserver(Engine.Storage.INodeStorage inner, int learner, System.Collections.Concurrent.ConcurrentQueue<string> found) : Engine.Storage.INodeStorage
    {
        public void Save(IReadOnlyList<Engine.Storage.GroupWrite> writes)
        {
            foreach (var w in writes)
                foreach (var e in w.Entries)
                    if (e.Type == Engine.Raft.EntryType.ConfChange && Engine.Raft.ConfChange.TryDecode(e.Data, out var cc) && cc.NodeId == learner
                        && cc.Type is Engine.Raft.ConfChangeType.AddVoter or Engine.Raft.ConfChangeType.PromoteLearner)
                        found.Enqueue($"group {w.Group} index {e.Index}: {cc}");
            inner.Save(writes);
        }

        public IReadOnlyList<Engine.Storage.EntryApplyResult> Apply(int shard, IReadOnlyList<Engine.Raft.LogEntry> entries) => inner.Apply(shard, entries);

        public void InstallSnapshotRows(int shard, long index, long term, ReadOnlyMemory<byte> chunk, bool first) => inner.InstallSnapshotRows(shard, index, term, chunk, first);

        public void CompleteSnapshotInstall(int shard, long index, long term, (ulong Start, ulong Last)? range) => inner.CompleteSnapshotInstall(shard, index, term, range);

        public void StageSnapshotRows(int shard, long index, long term, ReadOnlyMemory<byte> chunk, bool first) => inner.StageSnapshotRows(shard, index, term, chunk, first);

        public void BeginStagedSwap(int shard, long index, long term, (ulong Start, ulong Last)? range) => inner.BeginStagedSwap(shard, index, term, range);

        public bool SwapStagedRows(int shard, int maxKeys) => inner.SwapStagedRows(shard, maxKeys);

        public void Probe() => inner.Probe();
    }
}
