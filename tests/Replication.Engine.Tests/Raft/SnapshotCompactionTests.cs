using Replication.Engine.Raft;
using Xunit;

namespace Replication.Engine.Tests.Raft.Core2;

/// <summary>Log compaction and InstallSnapshot (Raft paper section 7; thesis chapter 5).</summary>
public sealed class SnapshotCompactionTests
{
    private static CoreTestCluster ThreeNodes(out RaftNode leader)
    {
        var c = new CoreTestCluster(new[] { 1, 2, 3 }, seed: 7);
        c.Campaign(1);
        leader = c.Leader();
        Assert.Equal(1, leader.Id);
        return c;
    }

    [Fact]
    public void Far_behind_follower_catches_up_by_snapshot_then_appends_continue()
    {
        // Reference: paper 7 (InstallSnapshot when the leader has discarded the entries a follower needs); thesis 5.3.
        var c = ThreeNodes(out var leader);
        c.Isolate(3);
        for (int i = 0; i < 20; i++) c.Propose(1, $"a{i}");
        c.Compact(1);
        long snapIndex = leader.LastSnapshot.Index;
        Assert.Equal(leader.Committed, snapIndex);
        Assert.True(snapIndex > c[3].LastIndex + 1);

        c.AutoSnapshot = false;
        c.Heal();
        c.Tick(3);
        var toThree = c.Sent.Where(m => m.To == 3 && m.From == 1 && m.Type is MessageType.Snapshot or MessageType.Append).ToList();
        var snapshotMessage = Assert.Single(c.HeldSnapshots);
        Assert.Equal(snapIndex, snapshotMessage.Index);
        Assert.Equal(leader.LastSnapshot.Term, snapshotMessage.LogTerm);
        Assert.Equal(new[] { 1, 2, 3 }, snapshotMessage.Voters);
        // While the transfer runs, the follower's progress is paused: no append follows the Snapshot message.
        int snapAt = toThree.FindIndex(m => m.Type == MessageType.Snapshot);
        Assert.DoesNotContain(toThree.Skip(snapAt + 1), m => m.Type == MessageType.Append);

        c.StreamSnapshot(snapshotMessage, succeeded: true);
        var three = c.Hosts[3];
        var installed = Assert.Single(three.InstalledSnapshots);
        Assert.Equal(snapIndex, installed.Index);
        Assert.Equal(snapIndex, c[3].Committed);

        c.AutoSnapshot = true;
        c.Propose(1, "after");
        c.Tick(2);
        Assert.Equal(leader.LastIndex, c[3].LastIndex);
        Assert.Equal(leader.Applied, c[3].Applied);
        Assert.Equal(CoreTestCluster.Commands(c.Hosts[1]), CoreTestCluster.Commands(three));
        Assert.Equal(leader.LastIndex, leader.MatchIndexes()[3]);
        c.AssertAppliedPrefixes();
    }

    [Fact]
    public void Failed_snapshot_transfer_is_retried_after_the_next_heartbeat_answer()
    {
        // Reference: paper 7; etcd ReportSnapshot semantics (failure: probe again, which asks for a new snapshot).
        var c = ThreeNodes(out _);
        c.Isolate(3);
        for (int i = 0; i < 5; i++) c.Propose(1, $"a{i}");
        c.Compact(1);
        c.AutoSnapshot = false;
        c.Heal();
        c.Tick(2);
        var first = Assert.Single(c.HeldSnapshots);
        c.HeldSnapshots.Clear();
        c.StreamSnapshot(first, succeeded: false);
        c.Tick(2);
        var second = Assert.Single(c.HeldSnapshots);
        Assert.Equal(first.Index, second.Index);
        c.StreamSnapshot(second, succeeded: true);
        c.Tick(1);
        Assert.Equal(c[1].LastIndex, c[3].LastIndex);
    }

    [Fact]
    public void Snapshot_sent_at_a_later_index_than_requested_resumes_replication_after_the_index_sent()
    {
        // A host sends its state machine as it is when the transfer starts (NodeHost: its applied index), later than the
        // index the Snapshot message named, and may compact its log up to that index while the transfer runs (NodeHost's
        // CompactionPoint). Replication must resume after the index sent: resuming after the named one probed compacted
        // entries and sent a whole second snapshot (ring bench, a restarted node).
        var c = ThreeNodes(out var leader);
        c.Isolate(3);
        for (int i = 0; i < 10; i++) c.Propose(1, $"a{i}");
        c.Compact(1);
        long named = leader.LastSnapshot.Index;
        c.AutoSnapshot = false;
        c.Heal();
        c.Tick(3);
        var request = Assert.Single(c.HeldSnapshots);
        Assert.Equal(named, request.Index);
        c.HeldSnapshots.Clear();

        for (int i = 0; i < 5; i++) c.Propose(1, $"b{i}");
        c.Compact(1);
        long sent = leader.LastSnapshot.Index;
        Assert.True(sent > named);
        // The follower's answer to the snapshot is lost (or comes after the transfer's end and a heartbeat answer): the
        // leader's probe goes out from what the report told it.
        c.Drop = m => m.From == 3 && m.To == 1 && m.Type == MessageType.AppendResponse;
        c.StreamSnapshot(request with { Index = sent, LogTerm = leader.LastSnapshot.Term }, succeeded: true);
        c.Drop = _ => false;
        c.Propose(1, "after");
        c.Tick(2);

        Assert.Empty(c.HeldSnapshots);
        Assert.Single(c.Hosts[3].InstalledSnapshots);
        Assert.Equal(leader.LastIndex, c[3].LastIndex);
        Assert.Equal(leader.Applied, c[3].Applied);
        c.AssertAppliedPrefixes();
    }

    [Fact]
    public void Snapshot_not_newer_than_commit_is_answered_with_the_commit_index()
    {
        // Reference: paper 7 (a stale InstallSnapshot must not roll back committed state); etcd handleSnapshot.
        var c = ThreeNodes(out var leader);
        for (int i = 0; i < 6; i++) c.Propose(1, $"a{i}");
        var two = c[2];
        long commit = two.Committed, last = two.LastIndex;
        Assert.True(commit >= 5);
        two.Step(new RaftMessage { Type = MessageType.Snapshot, From = 1, To = 2, Term = leader.Term, Index = 3, LogTerm = 1, Voters = [1, 2, 3] });
        var ready = two.GetReady();
        Assert.Null(ready.Snapshot);
        var answer = Assert.Single(ready.Messages);
        Assert.Equal(MessageType.AppendResponse, answer.Type);
        Assert.False(answer.Reject);
        Assert.Equal(commit, answer.Index);
        Assert.Equal(last, two.LastIndex);
        two.Advance(ready);
    }

    [Fact]
    public void Snapshot_whose_last_entry_the_log_already_holds_only_fast_forwards_commit()
    {
        // Reference: paper 7 InstallSnapshot receiver step 6 (retain the entries following a matching entry).
        var two = new RaftNode(new RaftConfig { Id = 2, Voters = [1, 2, 3], Random = new Random(1) }, new HardState(2, 0, 0),
            Enumerable.Range(1, 10).Select(i => new LogEntry(i, 2, EntryType.Normal, [(byte)i])));
        two.Step(new RaftMessage { Type = MessageType.Snapshot, From = 1, To = 2, Term = 2, Index = 8, LogTerm = 2, Voters = [1, 2, 3] });
        var ready = two.GetReady();
        Assert.Null(ready.Snapshot);
        Assert.Equal(8, two.Committed);
        Assert.Equal(10, two.LastIndex);
        Assert.Equal(8, Assert.Single(ready.Messages).Index);
        Assert.Equal(8, ready.CommittedEntries.Count);
    }

    [Fact]
    public void Stale_snapshot_arriving_before_an_accepted_one_is_installed_is_ignored_and_leaves_the_snapshot_index()
    {
        // Regression (found by the simulator with membership changes, seed 348 at the time): a
        // follower on a slow disk accepted a snapshot at 601, then a late transfer at 599 arrived
        // before the Ready carrying 601 was carried out; the host staged the 599 data over the 601
        // data and had nothing to install. Hosts now keep a received snapshot's data only when the
        // core took it, which they detect by its snapshot index moving. This pins that contract:
        // accepting moves LastSnapshot to the snapshot's index; a stale one (at or below the commit
        // index, paper 7) leaves it alone, and the pending Ready still installs the accepted one.
        var two = new RaftNode(new RaftConfig { Id = 2, Voters = [1, 2, 3], Random = new Random(1) }, new HardState(8, 0, 0), []);
        two.Advance(two.GetReady());
        long before = two.LastSnapshot.Index;
        two.Step(new RaftMessage { Type = MessageType.Snapshot, From = 1, To = 2, Term = 8, Index = 601, LogTerm = 8, Voters = [1, 2, 3] });
        Assert.NotEqual(before, two.LastSnapshot.Index);
        Assert.Equal(601, two.LastSnapshot.Index);

        two.Step(new RaftMessage { Type = MessageType.Snapshot, From = 1, To = 2, Term = 8, Index = 599, LogTerm = 8, Voters = [1, 2, 3] });
        Assert.Equal(601, two.LastSnapshot.Index); // ignored: the host must not keep its data

        var ready = two.GetReady();
        Assert.Equal(601, ready.Snapshot!.Index);
        Assert.All(ready.Messages, m => Assert.Equal(601, m.Index)); // both answered with the snapshot index
        two.Advance(ready);
        Assert.Equal((601, 601, 601), (two.LastIndex, two.Committed, two.Applied));
    }

    [Fact]
    public void Snapshot_with_conflicting_log_restores_and_committed_entries_start_after_it()
    {
        // Reference: paper 7 InstallSnapshot receiver step 7 (discard the entire log); thesis 5.1.
        var two = new RaftNode(new RaftConfig { Id = 2, Voters = [1, 2, 3], Random = new Random(1) }, new HardState(3, 0, 2),
            Enumerable.Range(1, 6).Select(i => new LogEntry(i, i <= 2 ? 1 : 2, EntryType.Normal, [(byte)i])));
        var first = two.GetReady();
        two.Advance(first);
        two.Step(new RaftMessage { Type = MessageType.Snapshot, From = 1, To = 2, Term = 3, Index = 5, LogTerm = 3, Voters = [1, 2, 3, 4], Learners = [5] });
        var ready = two.GetReady();
        Assert.Equal(new SnapshotMetadata(5, 3, ready.Snapshot!.Voters, ready.Snapshot.Learners), ready.Snapshot);
        Assert.Equal(new[] { 1, 2, 3, 4 }, ready.Snapshot.Voters);
        Assert.Equal(new[] { 5 }, ready.Snapshot.Learners);
        Assert.Empty(ready.Entries);
        Assert.Empty(ready.CommittedEntries);
        Assert.Equal(new HardState(3, 0, 5), ready.HardState);
        Assert.Equal(5, Assert.Single(ready.Messages).Index);
        two.Advance(ready);
        Assert.Equal((5, 5, 5, 3), (two.LastIndex, two.Committed, two.Applied, two.LastTerm));
        Assert.Equal(new[] { 1, 2, 3, 4 }, two.Voters.OrderBy(x => x));

        two.Step(new RaftMessage { Type = MessageType.Append, From = 1, To = 2, Term = 3, Index = 5, LogTerm = 3, Commit = 6, Entries = [new LogEntry(6, 3, EntryType.Normal, [6])] });
        var next = two.GetReady();
        Assert.Equal(6, Assert.Single(next.Entries).Index);
        Assert.Empty(next.CommittedEntries); // applied only once durable
        two.Advance(next);
        Assert.Equal(6, Assert.Single(two.GetReady().CommittedEntries).Index);
    }

    [Fact]
    public void Restart_from_snapshot_metadata_and_later_entries_restores_membership_and_commit()
    {
        // Reference: thesis 5.1 (the snapshot records the latest configuration as of its last index) and 4.1.
        var c = ThreeNodes(out _);
        c.AddJoiningNode(4);
        Assert.NotEqual(0, c.ProposeConfChange(1, ConfChangeType.AddLearner, 4));
        for (int i = 0; i < 4; i++) c.Propose(1, $"a{i}");
        c.Compact(2);
        Assert.Equal(new[] { 4 }, c.Hosts[2].Snapshot!.Learners);
        c.Tick(2);
        Assert.NotEqual(0, c.ProposeConfChange(1, ConfChangeType.PromoteLearner, 4));
        c.Propose(1, "b");
        c.Tick(2);

        var before = c[2];
        var restarted = c.Restart(2);
        Assert.Equal(new[] { 1, 2, 3, 4 }, restarted.Voters.OrderBy(x => x));
        Assert.Empty(restarted.Learners);
        Assert.Equal(before.Committed, restarted.Committed);
        Assert.Equal(before.LastIndex, restarted.LastIndex);
        Assert.Equal(before.Applied, restarted.Applied);
        Assert.False(restarted.IsConfChangePending);
        Assert.Empty(restarted.GetReady().CommittedEntries); // nothing re-applied: it all precedes the applied index

        // Restarting from the snapshot alone (all later entries lost from the state machine's view) re-applies after it.
        var h = c.Hosts[2];
        var fromSnapshotOnly = new RaftNode(h.Config with { Applied = h.Snapshot!.Index }, h.State, h.Log.ToList(), h.Snapshot);
        var ready = fromSnapshotOnly.GetReady();
        Assert.Equal(h.Snapshot.Index + 1, ready.CommittedEntries[0].Index);
        Assert.Equal(new[] { 1, 2, 3, 4 }, fromSnapshotOnly.Voters.OrderBy(x => x));
    }

    [Fact]
    public void Compaction_beyond_the_applied_index_is_refused_and_below_the_snapshot_ignored()
    {
        // Reference: paper 7 (a server snapshots only committed, applied state).
        var c = ThreeNodes(out var leader);
        c.Propose(1, "x");
        Assert.Throws<ArgumentOutOfRangeException>(() => leader.Compact(leader.Applied + 1));
        c.Compact(1);
        long snap = leader.LastSnapshot.Index;
        leader.Compact(snap - 1);
        Assert.Equal(snap, leader.LastSnapshot.Index);
        Assert.Equal(leader.LastSnapshot, leader.MetadataAt(snap));
    }

    [Fact]
    public void Learner_added_after_compaction_is_seeded_by_snapshot()
    {
        // Reference: thesis 4.2.1 (new servers catch up) with 5.3 (by snapshot when the log is compacted).
        var c = ThreeNodes(out var leader);
        for (int i = 0; i < 5; i++) c.Propose(1, $"a{i}");
        c.Compact(1);
        c.AddJoiningNode(4);
        Assert.NotEqual(0, c.ProposeConfChange(1, ConfChangeType.AddLearner, 4));
        c.Tick(3);
        var four = c.Hosts[4];
        Assert.Equal(leader.LastSnapshot.Index, Assert.Single(four.InstalledSnapshots).Index);
        Assert.Equal(new[] { 4 }, c[4].Learners);
        Assert.Equal(leader.Applied, c[4].Applied);
        Assert.Equal(CoreTestCluster.Commands(c.Hosts[1]), CoreTestCluster.Commands(four));
    }
}
