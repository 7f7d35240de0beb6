using Replication.Engine.Cluster;
using Replication.Engine.Raft;
using Replication.Engine.Storage;
using Replication.Engine.Transport;
using Replication.Engine.Tests.Storage;
using Replication.Engine.Verification;
using Xunit;
using Xunit.Abstractions;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// Replica ids (Transport.ReplicaIds, README "The ring"): a node that takes a shard back rejoins its group as a new member,
/// never under the id of the replica it dropped, and a node drops whatever is addressed to a replica it has removed.
/// </summary>
public sealed class ReplicaIdTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Bound = ClusterFixture.Bound;
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(60);

    [Fact]
    public void A_member_id_names_its_node_and_the_next_one_is_new()
    {
        Assert.Equal(7, ReplicaIds.Compose(7, 0));
        int second = ReplicaIds.Next(7);
        Assert.Equal((7, 1), (ReplicaIds.NodeOf(second), ReplicaIds.IncarnationOf(second)));
        Assert.Equal((7, 2), (ReplicaIds.NodeOf(ReplicaIds.Next(second)), ReplicaIds.IncarnationOf(ReplicaIds.Next(second))));
        Assert.True(ReplicaIds.Next(second) > second, "member ids of one node grow");
        Assert.Equal(ReplicaIds.MaxNode, ReplicaIds.NodeOf(ReplicaIds.Compose(ReplicaIds.MaxNode, ReplicaIds.MaxIncarnation)));
        Assert.True(ReplicaIds.Compose(ReplicaIds.MaxNode, ReplicaIds.MaxIncarnation) > 0);
        Assert.Throws<ArgumentOutOfRangeException>(() => ReplicaIds.Compose(ReplicaIds.MaxNode + 1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => ReplicaIds.Compose(1, ReplicaIds.MaxIncarnation + 1));
    }

    [Fact]
    public void The_metadata_gives_a_node_named_anew_a_new_id_and_a_split_inherits_them()
    {
        var metadata = ClusterMetadata.Empty;
        Assert.Equal(3, metadata.MemberIdOf(0, 3)); // never named anew: a founding replica, member id = node id
        Assert.Null(metadata.NewReplicaIds(0, Array.Empty<int>()));
        var first = metadata.NewReplicaIds(0, new[] { 3 })!;
        metadata = ClusterMetadata.FromRows(metadata.ToRows().Append((first.Key, first.Value!)));
        int once = metadata.MemberIdOf(0, 3);
        Assert.Equal((3, 1), (ReplicaIds.NodeOf(once), ReplicaIds.IncarnationOf(once)));
        Assert.Equal(2, metadata.MemberIdOf(0, 2));
        var again = metadata.NewReplicaIds(0, new[] { 3, 2 })!;
        metadata = ClusterMetadata.FromRows(metadata.ToRows().Where(r => r.Key != again.Key).Append((again.Key, again.Value!)));
        Assert.Equal(2, ReplicaIds.IncarnationOf(metadata.MemberIdOf(0, 3)));
        Assert.Equal(1, ReplicaIds.IncarnationOf(metadata.MemberIdOf(0, 2)));
        var split = metadata.NewReplicaIds(5, Array.Empty<int>(), from: 0)!;
        metadata = ClusterMetadata.FromRows(metadata.ToRows().Append((split.Key, split.Value!)));
        Assert.Equal(metadata.MemberIdOf(0, 3), metadata.MemberIdOf(5, 3));
        Assert.Equal(metadata.MemberIdOf(0, 2), metadata.MemberIdOf(5, 2));
        Assert.Equal(metadata.ToJson(), ClusterMetadata.FromJson(metadata.ToJson()).ToJson());
    }

    [Fact]
    public void The_plan_takes_a_nodes_stale_replica_out_before_it_adds_the_new_one()
    {
        int stale = 3, fresh = ReplicaIds.Next(3);
        // Voters 1, 2 and node 3's old replica; the metadata wants node 3's new one: remove the old first.
        Assert.Equal(new ConfChange(ConfChangeType.RemoveNode, stale), MembershipPlan.Next(new[] { 1, 2, stale }, Array.Empty<int>(), new[] { 1, 2, fresh }, Array.Empty<int>()));
        Assert.Equal(new ConfChange(ConfChangeType.AddLearner, fresh), MembershipPlan.Next(new[] { 1, 2 }, Array.Empty<int>(), new[] { 1, 2, fresh }, Array.Empty<int>()));
        // As a learner too (a learner-only node's replica, replaced).
        Assert.Equal(new ConfChange(ConfChangeType.RemoveNode, stale), MembershipPlan.Next(new[] { 1, 2 }, new[] { stale }, new[] { 1, 2 }, new[] { fresh }));
        // Never the last voter.
        Assert.Equal(new ConfChange(ConfChangeType.AddLearner, fresh), MembershipPlan.Next(new[] { stale }, Array.Empty<int>(), new[] { fresh }, Array.Empty<int>()));
    }

    [Fact]
    public void The_plan_removes_a_voter_only_when_the_voters_left_can_elect_without_one_that_cannot_vote_yet()
    {
        // Seed 1817 of the simulator: voter 1 joined empty (it votes once a leader reached it), 3 leads, node 2's replica is
        // stale. Removing it left {1, 3}, whose quorum needs 1: once 3 lost leadership, nobody could be elected.
        int stale = 2, fresh = ReplicaIds.Next(2);
        int[] none = [];
        Assert.Null(MembershipPlan.Next(new[] { 1, stale, 3 }, none, new[] { 1, fresh, 3 }, none, acknowledged: new[] { stale, 3 }));
        Assert.Equal(new ConfChange(ConfChangeType.RemoveNode, stale), MembershipPlan.Next(new[] { 1, stale, 3 }, none, new[] { 1, fresh, 3 }, none, acknowledged: new[] { 1, stale, 3 }));
        // A voter the placement no longer names: the same rule.
        Assert.Null(MembershipPlan.Next(new[] { 1, 3, 4, 5 }, none, new[] { 1, 3, 4 }, none, acknowledged: new[] { 3, 5 }));
        Assert.Equal(new ConfChange(ConfChangeType.RemoveNode, 5), MembershipPlan.Next(new[] { 1, 3, 4, 5 }, none, new[] { 1, 3, 4 }, none, acknowledged: new[] { 3, 4, 5 }));
        // A learner counts in no quorum: removed whatever the others acknowledged.
        Assert.Equal(new ConfChange(ConfChangeType.RemoveNode, stale), MembershipPlan.Next(new[] { 1, 3 }, new[] { stale }, new[] { 1, 3 }, new[] { fresh }, acknowledged: new[] { 3 }));
    }

    [Fact]
    public void A_dropped_replica_leaves_a_tombstone_that_survives_a_reopen()
    {
        using var dir = new TempFolder();
        string path = dir.File("raft.db");
        int member = ReplicaIds.Compose(2, 1);
        using (var store = new RaftLogStore(path))
        {
            Assert.Equal((0, 0), store.Replica(4));
            store.SetReplica(4, member);
            Assert.Equal((member, 0), store.Replica(4));
            store.DropGroup(4, member);
            store.DropGroup(4, 2); // an older one dropped later (a drop replayed): the tombstone never goes down
            Assert.Equal((0, member), store.Replica(4));
        }
        using (var reopened = new RaftLogStore(path))
            Assert.Equal((0, member), reopened.Replica(4));
    }

    [Fact]
    public void A_version_2_raft_db_gains_the_replica_table()
    {
        using var dir = new TempFolder();
        string path = dir.File("raft.db");
        using (var store = new RaftLogStore(path)) store.Save(new[] { new GroupWrite(1, new HardState(3, 1, 0), Array.Empty<LogEntry>()) });
        TempFolder.Exec(path, "DROP TABLE raft_replica; PRAGMA user_version = 2");
        using var migrated = new RaftLogStore(path);
        Assert.Equal((0, 0), migrated.Replica(1)); // a legacy replica: member id = node id, no tombstone
        Assert.Equal(3, migrated.Load(1).State.Term);
    }

    /// <summary>
    /// Move away and back under writes: node x's replica of a shard moves to node 4 (a pin) and back (the original pin).
    /// The returning replica is a new member (a higher incarnation of node x), its old id is x's tombstone, the group never
    /// holds two replicas of one node, operators see node ids only, and the history stays linearizable. Then what is
    /// addressed to the old id — a message, a snapshot — is dropped, and the old replica cannot be hosted again.
    /// </summary>
    [Fact]
    public async Task A_replica_moved_away_and_back_returns_as_a_new_member_and_its_old_id_is_dead()
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 2, configure: o => o with { SnapshotEntries = 50 });
        var c = f.Cluster;
        var recorder = new HistoryRecorder();
        using var stop = new CancellationTokenSource();
        var keys = Enumerable.Range(0, 12).Select(i => $"rid-{i}").ToArray();
        var clients = Enumerable.Range(0, 2).Select(i => Task.Run(() => recorder.ClientLoopAsync(c, i, keys, TimeSpan.FromSeconds(5), stop.Token))).ToArray();
        ClusterFixture.Eventually(() => recorder.Acknowledged >= 20, "clients made progress");

        var fourth = await c.AddNodeAsync(zone: null, learner: false, CancellationToken.None);
        await c.WaitForPlacementAsync(null, Settle, CancellationToken.None);
        const int shard = 0;
        var original = c.GetShards().Single(s => s.Id == shard).Voters.Order().ToArray();
        int x = original.First(v => v != fourth.Id);
        int target = new[] { 1, 2, 3, fourth.Id }.Except(original).Single();
        var host = c.Node(x)!.Host;
        int old = host.Status[shard].Member;
        Assert.Equal(x, ReplicaIds.NodeOf(old));
        output.WriteLine($"shard {shard} on [{string.Join(",", original)}]: node {x}'s replica {ReplicaIds.IncarnationOf(old)}.{x} moves to node {target} and back");

        await c.PinShardAsync(shard, original.Select(v => v == x ? target : v).ToArray(), Bound, CancellationToken.None);
        await c.WaitForPlacementAsync(null, Settle, CancellationToken.None);
        ClusterFixture.Eventually(() => !host.Status.ContainsKey(shard), $"node {x} dropped its replica of shard {shard}", Settle);
        // Its rows go too, in steps between the loop's other work (KvStore.BeginDropShard).
        ClusterFixture.Eventually(() => !host.Store.Scan(shard, "").Any(), $"node {x} deleted the rows of its dropped replica of shard {shard}", Settle);
        Assert.Equal(old, (await host.ReplicaAsync(shard)).Removed);
        // Away: a message to the dropped replica does not bring it back, nor can the host be made to host it again.
        var stale = new RaftMessage { Type = MessageType.Append, Group = shard, From = ReplicaIds.Compose(target, 0), To = old, Term = 1_000 };
        host.OnMessage(stale);
        await host.ReplicaAsync(shard); // runs after the message on the loop (one inbox, in order)
        await host.ReplicaAsync(shard); // and after the status that followed it was published
        Assert.False(host.Status.ContainsKey(shard), "a message to a dropped replica recreated it");
        Assert.False(await host.AddGroupAsync(shard, old, bootstrapVoters: null), "a dropped replica was hosted again under its old id");

        await c.PinShardAsync(shard, original, Bound, CancellationToken.None);
        await c.WaitForPlacementAsync(null, Settle, CancellationToken.None);
        ClusterFixture.Eventually(() => host.Status.TryGetValue(shard, out var st) && st.MemberVoters.Contains(st.Member), $"node {x} is a voter of shard {shard} again", Settle);
        int back = host.Status[shard].Member;
        output.WriteLine($"node {x} is back as replica {ReplicaIds.IncarnationOf(back)}.{x}");
        Assert.Equal(x, ReplicaIds.NodeOf(back));
        Assert.True(ReplicaIds.IncarnationOf(back) > ReplicaIds.IncarnationOf(old), $"node {x} came back under an old id ({back})");
        foreach (int v in original)
        {
            var st = c.Node(v)!.Host.Status[shard];
            Assert.DoesNotContain(old, st.MemberVoters.Concat(st.MemberLearners));
            Assert.Equal(st.MemberVoters.Count, st.MemberVoters.Select(ReplicaIds.NodeOf).Distinct().Count());
        }
        // Operators see nodes: Get-ReplicationShard's voters, learners and leader are node ids.
        var shown = c.GetShards().Single(s => s.Id == shard);
        Assert.Equal(original, shown.Voters.Order());
        Assert.Empty(shown.Learners);
        Assert.Contains(shown.Leader, original);

        // Back: a message or a snapshot addressed to the old id is dropped; the new replica does not see it.
        long termBefore = host.Status[shard].Term;
        host.OnMessage(stale with { Term = termBefore + 1_000 });
        byte[] chunk = new byte[16];
        host.OnMessage(new RaftMessage
        {
            Type = MessageType.SnapshotChunk, Group = shard, From = ReplicaIds.Compose(target, 0), To = old, Term = termBefore + 2_000,
            Index = 1_000_000, LogTerm = termBefore + 2_000, Context = 0, Commit = 1, RejectHint = Crc32C.Append(0, chunk),
            Voters = new[] { old }, Entries = new[] { new LogEntry(1, termBefore + 2_000, EntryType.Normal, chunk) },
        });
        await host.ReplicaAsync(shard);
        await host.ReplicaAsync(shard);
        Assert.True(host.Status[shard].Term < termBefore + 1_000, "a message to the dropped replica reached the new one");
        Assert.True(host.Status[shard].Applied < 1_000_000, "a snapshot for the dropped replica was installed");
        Assert.Equal(back, host.Status[shard].Member);

        int acknowledged = recorder.Acknowledged;
        ClusterFixture.Eventually(() => recorder.Acknowledged >= acknowledged + 20, "clients made progress after the move back");
        stop.Cancel();
        await Task.WhenAll(clients);
        var verdict = await recorder.CheckAsync(c, Bound);
        output.WriteLine($"{recorder.History.Count} operations, {recorder.Acknowledged} acknowledged puts: {verdict.Outcome} ({verdict.Detail})");
        Assert.Equal(CheckOutcome.Linearizable, verdict.Outcome);
        var consistency = await c.CheckConsistencyAsync(null, Bound, CancellationToken.None);
        Assert.All(consistency, r => Assert.True(r.Consistent, $"shard {r.Shard} replicas differ"));
    }
}
