using Replication.Engine.Raft;
using Xunit;

namespace Replication.Engine.Tests.Raft;

/// <summary>Leader election, votes, pre-vote and check-quorum, on <see cref="RaftTestNetwork"/>.</summary>
public sealed class RaftElectionTests
{
    // Reference: paper 5.2 (leader election).
    [Theory]
    [InlineData(3)]
    [InlineData(5)]
    public void GroupElectsExactlyOneLeader(int voters)
    {
        var net = new RaftTestNetwork(voters, seed: 11);
        int leader = net.WaitForLeader();
        net.Run(30);
        Assert.Single(net.Nodes.Values, n => n.Role == RaftRole.Leader);
        Assert.All(net.Nodes.Values, n => Assert.Equal(leader, n.Leader));
        Assert.All(net.Nodes.Values, n => Assert.Equal(net.Nodes[leader].Term, n.Term));
    }

    // Reference: paper 5.2 (a single server is its own majority); regression test for the pre-vote
    // campaign re-entering the pre-vote forever (stack overflow with one voter, no leader ever with more).
    [Fact]
    public void SingleNodeGroupElectsItselfAndCommitsAlone()
    {
        var net = new RaftTestNetwork(1);
        int leader = net.WaitForLeader();
        Assert.Equal(1, leader);
        long index = net.Propose(1, "cmd-alone");
        Assert.True(index > 0);
        Assert.Equal(index, net.Nodes[1].Committed);
        Assert.Equal(new[] { "cmd-alone" }, net.AppliedCommands(1));
    }

    // Reference: paper 5.2, Figure 3 (Election Safety: at most one leader per term), with random
    // message loss and random crash/restart; the harness asserts the invariant after every step.
    [Fact]
    public void ElectionSafetyHoldsAcrossSeedsWithRandomDrops()
    {
        int seedsWithLeader = 0;
        for (int seed = 1; seed <= 200; seed++)
        {
            var rng = new Random(seed);
            int voters = seed % 2 == 0 ? 3 : 5;
            var net = new RaftTestNetwork(voters, seed: seed, configure: c => c with { PreVote = seed % 3 != 0 });
            net.Intercept = m => rng.NextDouble() < 0.2 ? null : m;
            for (int tick = 0; tick < 150; tick++)
            {
                net.TickAll();
                // Deliver in a few partial rounds so messages interleave with ticks.
                for (int r = 0; r < 3; r++) net.DeliverOnce();
                if (rng.NextDouble() < 0.02)
                {
                    int victim = rng.Next(1, voters + 1);
                    if (net.Down.Contains(victim)) net.Restart(victim);
                    else if (net.Down.Count == 0) net.Crash(victim);
                }
            }
            if (net.LeaderOfTerm.Count > 0) seedsWithLeader++;
        }
        // Liveness sanity: with 20% loss almost every run elects someone.
        Assert.True(seedsWithLeader >= 190, $"only {seedsWithLeader}/200 runs elected a leader");
    }

    // Reference: paper 5.4.1 (election restriction: a vote goes only to a candidate whose log is at
    // least as up-to-date, so a leader holds every committed entry).
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void CandidateWithStaleLogCannotWin(bool preVote)
    {
        // Check-quorum off: voters then answer at once, so only the log comparison can refuse node 1.
        var net = new RaftTestNetwork(3, configure: c => c with { PreVote = preVote, CheckQuorum = false }, initial: id =>
            (new HardState(2, 0, 1), id == 1 ? RaftTestNetwork.Log(1) : RaftTestNetwork.Log(1, 2)));
        for (int t = 0; t < 60; t++)
        {
            net.Tick(1);
            net.DeliverAll();
            Assert.NotEqual(RaftRole.Leader, net.Nodes[1].Role);
        }
        Assert.Contains(net.Delivered, m => m.From == 2 && m.To == 1 && m.Reject
            && m.Type is MessageType.VoteResponse or MessageType.PreVoteResponse);
        Assert.NotEqual(1, net.Nodes[2].Vote);
        Assert.NotEqual(1, net.Nodes[3].Vote);
        if (preVote) Assert.Equal(2, net.Nodes[2].Term); // pre-vote failed: no term was raised anywhere

        int leader = net.WaitForLeader();
        Assert.NotEqual(1, leader);
        net.Run(5);
        Assert.Equal(2, net.Disks[1].Entries[1].Term); // entry 2@2 survived and reached node 1
    }

    // Reference: paper 5.2 and Figure 2 ("persistent state ... updated on stable storage before
    // responding to RPCs"): a granted vote is in the HardState of the very Ready carrying the response.
    [Fact]
    public void VoteIsPersistedInTheReadyThatCarriesTheVoteResponse()
    {
        var net = new RaftTestNetwork(3, seed: 5);
        int grants = 0;
        net.OnReady = (id, rd) =>
        {
            foreach (var m in rd.Messages.Where(m => m.Type == MessageType.VoteResponse && !m.Reject))
            {
                grants++;
                Assert.NotNull(rd.HardState);
                Assert.Equal(m.To, rd.HardState!.Value.Vote);
                Assert.Equal(m.Term, rd.HardState.Value.Term);
            }
        };
        net.WaitForLeader();
        Assert.True(grants >= 1);
        // And the vote survives a crash: a restarted voter does not vote again in that term.
        int leader = net.CurrentLeader();
        int voter = net.VoterIds.First(id => id != leader && net.Nodes[id].Vote == leader);
        net.Crash(voter);
        net.Restart(voter);
        Assert.Equal(leader, net.Nodes[voter].Vote);
        Assert.Equal(net.Nodes[leader].Term, net.Nodes[voter].Term);
    }

    // Reference: thesis 9.6 (pre-vote) and 4.2.3 (disruptive servers): a partitioned node that
    // rejoins does not raise its term while away nor depose the healthy leader when back.
    [Fact]
    public void PartitionedNodeRejoiningDoesNotDisruptTheLeader()
    {
        var net = new RaftTestNetwork(3, seed: 7);
        int leader = net.WaitForLeader();
        long term = net.Nodes[leader].Term;
        int loner = net.VoterIds.First(id => id != leader);
        net.Isolate(loner);
        net.Run(100);
        Assert.Equal(term, net.Nodes[loner].Term);
        net.Heal();
        net.Run(30);
        Assert.Equal(leader, net.CurrentLeader());
        Assert.All(net.Nodes.Values, n => Assert.Equal(term, n.Term));
        Assert.Equal(leader, net.Nodes[loner].Leader);
    }

    // Reference: thesis 6.2 (check-quorum: a leader that cannot reach a majority steps down) and
    // paper 5.3 (the new leader's log overwrites the old leader's uncommitted entries).
    [Fact]
    public void CutOffLeaderStepsDownAndItsUncommittedEntriesAreOverwritten()
    {
        var net = new RaftTestNetwork(3, seed: 13);
        int old = net.WaitForLeader();
        net.Propose(old, "cmd-committed");
        net.Run(2);
        long committed = net.Nodes[old].Committed;

        net.Isolate(old);
        long lost = net.Propose(old, "cmd-lost");
        Assert.True(lost > 0);
        int ticks = 0;
        for (; ticks < 40 && net.Nodes[old].Role == RaftRole.Leader; ticks++)
        {
            net.TickAll();
            net.DeliverAll();
            Assert.Equal(committed, net.Nodes[old].Committed); // no quorum, no commit
        }
        Assert.NotEqual(RaftRole.Leader, net.Nodes[old].Role);
        Assert.True(ticks <= 2 * 10, $"stepped down after {ticks} ticks");

        int fresh = net.WaitForLeader();
        Assert.NotEqual(old, fresh);
        net.Propose(fresh, "cmd-new");
        net.Run(2);
        net.Heal();
        net.Run(10);
        Assert.DoesNotContain(net.Disks[old].Entries, e => e.Data.SequenceEqual("cmd-lost"u8.ToArray()));
        foreach (int id in net.VoterIds)
        {
            Assert.Equal(new[] { "cmd-committed", "cmd-new" }, net.AppliedCommands(id));
            Assert.Equal(RaftTestNetwork.Describe(net.Disks[fresh].Entries), RaftTestNetwork.Describe(net.Disks[id].Entries));
        }
    }
}
