using Replication.Engine.Raft;
using Xunit;

namespace Replication.Engine.Tests.Raft;

/// <summary>Log replication, commitment, crash recovery, learners and flow control.</summary>
public sealed class RaftReplicationTests
{
    // Reference: paper 5.3 (log replication) and 5.4.3 (state machine safety: every node applies the
    // same entries in the same order; the harness also checks this on every apply).
    [Theory]
    [InlineData(3)]
    [InlineData(5)]
    public void ProposalsCommitAndApplyInOrderEverywhere(int voters)
    {
        var net = new RaftTestNetwork(voters, seed: 21);
        int leader = net.WaitForLeader();
        var expected = new List<string>();
        for (int i = 0; i < 20; i++)
        {
            var batch = new[] { $"cmd-{i}-0", $"cmd-{i}-1" }.Select(System.Text.Encoding.UTF8.GetBytes).ToArray();
            long first = net.Nodes[leader].Propose(batch);
            Assert.True(first > 0);
            net.ProcessReady(leader);
            expected.Add($"cmd-{i}-0");
            expected.Add($"cmd-{i}-1");
            if (i % 3 == 0) net.Run(1);
        }
        net.Run(3);
        foreach (int id in net.VoterIds)
        {
            Assert.Equal(expected, net.AppliedCommands(id));
            Assert.Equal(net.Nodes[leader].Committed, net.Nodes[id].Applied);
        }
    }

    // Reference: paper 5.3 and Figure 2 (a leader commits an entry once a majority *stored* it; the
    // follower's acknowledgment leaves only after its Ready was persisted).
    [Fact]
    public void EntryCommitsOnlyOnceAQuorumPersistedIt()
    {
        var net = new RaftTestNetwork(3, seed: 2);
        int leader = net.WaitForLeader();
        var followers = net.VoterIds.Where(id => id != leader).ToArray();
        foreach (int f in followers) net.ManualReady.Add(f);
        long index = net.Propose(leader, "cmd-x");
        net.DeliverAll();
        net.Run(3);
        Assert.True(net.Nodes[leader].Committed < index, "committed before any follower persisted");
        Assert.True(net.Nodes[followers[0]].LastIndex >= index); // received, but not yet durable

        net.ProcessReady(followers[0]);
        net.DeliverAll();
        Assert.Equal(index, net.Nodes[leader].Committed);
        Assert.Equal(new[] { "cmd-x" }, net.AppliedCommands(leader));
    }

    // Ready's contract, step 4: the committed entries a Ready hands out are already durable in the local log, so a node
    // never applies (nor answers a write for) an entry a crash could take from its disk (RaftLog.NextCommitted). Checked
    // against the harness's disk at the moment each Ready is taken, for the leader and for a follower that learns of
    // commits beyond what it has persisted (its Readies held back), with a follower whose suffix is truncated and rewritten.
    // Fails when NextCommitted hands out up to the commit index alone.
    [Fact]
    public void CommittedEntriesOfAReadyAreAlreadyDurableBeforeItsOwnEntriesArePersisted()
    {
        var net = new RaftTestNetwork(3, initial: id => id == 3
            ? (new HardState(2, 0, 2), RaftTestNetwork.Log(1, 1, 2, 2, 2))
            : (new HardState(2, 0, 2), RaftTestNetwork.Log(1, 1)));
        int checkedEntries = 0;
        net.OnReady = (id, rd) =>
        {
            var disk = net.Disks[id];
            foreach (var e in rd.CommittedEntries)
            {
                Assert.True(e.Index <= disk.Entries.Count && disk.Entries[(int)e.Index - 1].Term == e.Term,
                    $"node {id}: committed entry {e.Index}@{e.Term} handed out before it was persisted");
                if (rd.Entries.Count > 0) Assert.True(e.Index < rd.Entries[0].Index, $"node {id}: entry {e.Index} committed in the Ready that persists it");
                checkedEntries++;
            }
        };
        net.ElectByTicking(1);
        net.DeliverAll();
        for (int i = 0; i < 30; i++)
        {
            // Node 3 sometimes holds its Readies while the leader commits with node 2 and tells node 3 the commit index:
            // node 3 then knows entries committed that it has received but not yet persisted.
            if (i % 10 == 0) net.ManualReady.Add(3);
            net.Propose(1, $"cmd-{i}");
            if (i % 4 == 0) net.DeliverAll();
            else net.DeliverOnce();
            if (i % 10 == 5)
            {
                net.Run(2);
                Assert.True(net.Nodes[3].Committed > net.Disks[3].Entries.Count, "node 3 knows of commits beyond what it persisted");
                net.ManualReady.Remove(3);
                net.ProcessReady(3);
            }
        }
        net.Run(3);
        Assert.Equal(Enumerable.Range(0, 30).Select(i => $"cmd-{i}"), net.AppliedCommands(3));
        Assert.True(checkedEntries >= 90, $"only {checkedEntries} committed entries were handed out");
    }

    // Reference: paper 5.3 (Log Matching: a follower's conflicting entries are deleted and replaced
    // by the leader's), Figure 7.
    [Fact]
    public void ConflictingUncommittedSuffixIsTruncatedAndReplaced()
    {
        var net = new RaftTestNetwork(3, initial: id => id == 3
            ? (new HardState(2, 0, 2), RaftTestNetwork.Log(1, 1, 2, 2, 2))
            : (new HardState(2, 0, 2), RaftTestNetwork.Log(1, 1)));
        net.ElectByTicking(1);
        net.DeliverAll();
        net.Run(2);
        Assert.Equal("1@1,2@1,3@3", RaftTestNetwork.Describe(net.Disks[3].Entries));
        Assert.Equal(RaftTestNetwork.Describe(net.Disks[1].Entries), RaftTestNetwork.Describe(net.Disks[3].Entries));
        Assert.Equal(3, net.Nodes[3].LastIndex); // the in-memory log was truncated too
        Assert.Equal(3, net.Nodes[3].Committed);
    }

    // Reference: paper 5.3, last paragraphs (the rejection names the conflicting term so the leader
    // skips a whole term per round trip). A follower whose 100 entries all conflict converges in 2
    // rejections, not 100.
    [Fact]
    public void FastBacktrackingConvergesInFewRoundTrips()
    {
        var leaderLog = RaftTestNetwork.Log(new long[] { 1 }.Concat(Enumerable.Repeat(3L, 100)).ToArray());
        var staleLog = RaftTestNetwork.Log(new long[] { 1 }.Concat(Enumerable.Repeat(2L, 100)).ToArray());
        var net = new RaftTestNetwork(3, initial: id => (new HardState(3, 0, 1), id == 3 ? staleLog : leaderLog));
        net.ElectByTicking(1);
        net.Run(3);
        int rejections = net.Delivered.Count(m => m.Type == MessageType.AppendResponse && m.From == 3 && m.Reject);
        Assert.InRange(rejections, 1, 2);
        Assert.Equal(RaftTestNetwork.Describe(net.Disks[1].Entries), RaftTestNetwork.Describe(net.Disks[3].Entries));

        // A follower that is merely behind (short log) needs one rejection at most.
        var net2 = new RaftTestNetwork(3, initial: id => (new HardState(3, 0, 1), id == 3 ? RaftTestNetwork.Log(1) : leaderLog));
        net2.ElectByTicking(1);
        net2.Run(3);
        Assert.InRange(net2.Delivered.Count(m => m.Type == MessageType.AppendResponse && m.From == 3 && m.Reject), 0, 1);
        Assert.Equal(102, net2.Nodes[3].Committed);
    }

    // Reference: paper Figure 2 (AppendEntries receiver, rule 1: "reply false if term < currentTerm")
    // and 5.1. An append from a deposed leader that arrives late (held by a partition, or delayed
    // past an election timeout) leaves the log alone, even though it matches at its previous index
    // and the entries it carries conflict: they may overwrite entries the newer leader already
    // committed (with this node's copy in the quorum). The answer carries the newer term, so the
    // deposed leader steps down. The simulator's StaleAppendAccepted mutant breaks this rule.
    [Fact]
    public void StaleAppendFromAnOlderTermLeavesTheLogAlone()
    {
        var log = RaftTestNetwork.Log(1, 3, 3);
        var node = new RaftNode(new RaftConfig { Id = 1, Voters = new[] { 1, 2, 3 } }, new HardState(3, 3, 1), log);
        node.Step(new RaftMessage
        {
            Type = MessageType.Append, From = 2, To = 1, Term = 2, Index = 1, LogTerm = 1, Commit = 1,
            Entries = new[] { new LogEntry(2, 2, EntryType.Normal, new byte[] { 9 }), new LogEntry(3, 2, EntryType.Normal, new byte[] { 9 }) },
        });
        Assert.Equal((3L, 3L), (node.LastIndex, node.LastTerm));
        Assert.Equal(0, node.Leader);
        var rd = node.GetReady();
        Assert.Empty(rd.Entries);
        var answer = Assert.Single(rd.Messages);
        Assert.Equal((MessageType.AppendResponse, 2, 3L), (answer.Type, answer.To, answer.Term));
    }

    // Reference: paper 5.4.2 and Figure 8: an entry of an older term stored on a majority is not
    // committed by counting replicas (a later leader could still overwrite it); it commits only
    // indirectly, once an entry of the leader's own term is stored on a majority.
    [Fact]
    public void Figure8LeaderDoesNotCommitOlderTermEntryByCounting()
    {
        // S1 led term 2 and replicated 2@2 to S2 only; S5 led term 3 and wrote 2@3 alone.
        var net = new RaftTestNetwork(5, initial: id => (new HardState(3, 0, 1), id switch
        {
            1 or 2 => RaftTestNetwork.Log(1, 2),
            5 => RaftTestNetwork.Log(1, 3),
            _ => RaftTestNetwork.Log(1),
        }));
        net.Crash(5);
        // Entries of S1's new term (4) are held back: followers get at most the older-term prefix.
        net.Intercept = m => m.Type == MessageType.Append
            ? m with { Entries = m.Entries.TakeWhile(e => e.Term != 4).ToList() }
            : m;
        net.ElectByTicking(1);
        Assert.Equal(4, net.Nodes[1].Term);
        net.Run(5);
        int holding = net.VoterIds.Count(id => net.Disks[id].Entries.Count >= 2 && net.Disks[id].Entries[1].Term == 2);
        Assert.True(holding >= 3, $"2@2 on {holding} nodes");
        Assert.Equal(1, net.Nodes[1].Committed);
        Assert.All(net.VoterIds, id => Assert.True(net.Disks[id].Applied <= 1));

        net.Intercept = null;
        net.Run(3);
        Assert.Equal(3, net.Nodes[1].Committed);
        Assert.Equal("1@1,2@2,3@4", RaftTestNetwork.Describe(net.Disks[1].AppliedEntries));
    }

    // Reference: paper 5.4 and Figure 2 (persistent state): every node crashes at once, losing what
    // it had not persisted; after restart nothing that had been committed is lost.
    [Fact]
    public void AllNodesCrashAtOnceAndLoseNothingCommitted()
    {
        var net = new RaftTestNetwork(3, seed: 17);
        int leader = net.WaitForLeader();
        for (int i = 0; i < 10; i++)
        {
            net.Propose(leader, $"cmd-{i}");
            if (i % 2 == 0) net.Run(1);
        }
        net.Run(2);
        // More work that is received but never persisted anywhere.
        foreach (int id in net.VoterIds) net.ManualReady.Add(id);
        net.Nodes[leader].Propose(new[] { "cmd-unpersisted"u8.ToArray() });
        net.ProcessReady(leader); // leader persists and sends...
        net.ManualReady.Remove(leader);
        net.DeliverAll();         // ...followers receive but persist nothing
        var committed = net.Disks[leader].Entries.Take((int)net.Nodes[leader].Committed).ToList();
        Assert.True(committed.Count >= 11);

        foreach (int id in net.VoterIds) net.Crash(id);
        net.ManualReady.Clear();
        foreach (int id in net.VoterIds) net.Restart(id);
        int next = net.WaitForLeader();
        net.Propose(next, "cmd-after");
        net.Run(3);
        foreach (int id in net.VoterIds)
        {
            var log = net.Disks[id].Entries;
            foreach (var e in committed) Assert.Equal(e, log[(int)e.Index - 1]);
            Assert.Equal(net.AppliedCommands(next), net.AppliedCommands(id));
            Assert.Contains("cmd-9", net.AppliedCommands(id));
        }
    }

    // Reference: thesis 4.2.1 (non-voting members catch up without counting toward majorities).
    [Fact]
    public void LearnersReceiveEntriesButNeverVoteCampaignOrCountForCommit()
    {
        var net = new RaftTestNetwork(3, learners: 1, seed: 4);
        const int learner = 4;
        int leader = net.WaitForLeader();
        net.Propose(leader, "cmd-1");
        net.Run(2);
        Assert.Equal(new[] { "cmd-1" }, net.AppliedCommands(learner));

        // Cut off from everyone for many election timeouts: a learner never campaigns.
        net.Isolate(learner);
        long term = net.Nodes[learner].Term;
        net.Run(100);
        Assert.Equal(term, net.Nodes[learner].Term);
        Assert.Equal(RaftRole.Follower, net.Nodes[learner].Role);
        net.Heal();
        net.Run(3);

        // Leader plus learner are two of four nodes but only one of three voters: no commit.
        leader = net.CurrentLeader();
        foreach (int v in net.VoterIds.Where(v => v != leader)) net.Cut(leader, v);
        long index = net.Propose(leader, "cmd-2");
        net.DeliverAll();
        net.TickAll();
        net.DeliverAll();
        Assert.True(net.Nodes[learner].LastIndex >= index, "the learner did receive the entry");
        Assert.True(net.Nodes[leader].Committed < index, "learner counted toward the commit quorum");

        Assert.DoesNotContain(net.Delivered, m => (m.From == learner || m.To == learner)
            && m.Type is MessageType.Vote or MessageType.PreVote or MessageType.VoteResponse or MessageType.PreVoteResponse);
    }

    // Reference: thesis 10.2.2 (pipelining, bounded): with at most 2 appends in flight the leader stops
    // sending after two and resumes as acknowledgments free the window.
    [Fact]
    public void FlowControlStopsWhenTheWindowIsFullAndResumesOnAcks()
    {
        var net = new RaftTestNetwork(3, seed: 8, configure: c => c with { MaxInflightMessages = 2, MaxSizePerMessage = 1 });
        int leader = net.WaitForLeader();
        net.Run(2); // followers in replicate state
        int f = net.VoterIds.First(id => id != leader);
        for (int i = 0; i < 6; i++) Assert.True(net.Propose(leader, $"cmd-{i}") > 0);
        int Appends() => net.Queue.Count(m => m.Type == MessageType.Append && m.To == f && m.Entries.Count > 0);
        Assert.Equal(2, Appends());

        // Deliver the two appends; their two acks free the window and two more go out.
        net.DeliverWhere(m => m.To == f && m.Type == MessageType.Append);
        Assert.Equal(0, Appends());
        net.DeliverWhere(m => m.From == f && m.Type == MessageType.AppendResponse);
        Assert.Equal(2, Appends());

        net.DeliverAll();
        Assert.Equal(net.Nodes[leader].LastIndex, net.Nodes[f].LastIndex);
        net.Run(1);
        Assert.Equal(6, net.AppliedCommands(f).Count);
    }

    // Reference: paper 5.3 and Figure 2 assume a follower never loses what it acknowledged. A node
    // restored from an older backup breaks that; the leader must notice (the follower's heartbeat
    // answer carries its last index) and probe from what it has, or it would ignore the follower's
    // rejections as stale forever and the node would never catch up.
    [Fact]
    public void FollowerRolledBackToAnOlderDiskCatchesUpUnderTheSameLeader()
    {
        var net = new RaftTestNetwork(3, seed: 17);
        int leader = net.WaitForLeader();
        int follower = net.VoterIds.First(id => id != leader);
        for (int i = 0; i < 3; i++) net.Propose(leader, $"early-{i}");
        net.Run(5);
        var old = net.Disks[follower];
        var backup = new RaftTestNetwork.Disk
        {
            HardState = old.HardState,
            Entries = old.Entries.ToList(),
            Applied = old.Applied,
            AppliedEntries = old.AppliedEntries.ToList(),
        };
        for (int i = 0; i < 5; i++) net.Propose(leader, $"late-{i}");
        net.Run(5);
        Assert.Equal(net.AppliedCommands(leader), net.AppliedCommands(follower));

        net.Crash(follower);
        net.Disks[follower] = backup; // restored from the older copy
        net.Restart(follower);
        Assert.Equal(leader, net.CurrentLeader());
        net.Propose(leader, "after-restore");
        net.Run(20);
        Assert.Equal(leader, net.CurrentLeader()); // caught up under the same leader, no election needed
        Assert.Equal(net.AppliedCommands(leader), net.AppliedCommands(follower));
        Assert.Contains("late-4", net.AppliedCommands(follower));
    }
}
