using Replication.Engine.Raft;
using Xunit;

namespace Replication.Engine.Tests.Raft;

/// <summary>Quiescence (RaftNode.Quiesce.cs): an idle, settled group stops heartbeating; node liveness stands in.</summary>
public sealed class RaftQuiesceTests
{
    private static RaftTestNetwork Quiescing(int voters = 3, int learners = 0) =>
        new(voters, learners, seed: 41, configure: c => c with { Quiesce = true });

    /// <summary>Ticks the network, and gives every quiesced core the liveness of every live node (as NodeHost.Liveness does).</summary>
    private static void RunWithLiveness(RaftTestNetwork net, int ticks)
    {
        for (int t = 0; t < ticks; t++)
        {
            net.TickAll();
            foreach (int to in net.AllIds.Where(id => !net.Down.Contains(id)))
                foreach (int from in net.AllIds.Where(id => id != to && !net.Down.Contains(id)))
                    net.Nodes[to].HeardFrom(from);
            net.DeliverAll();
        }
    }

    private static int Heartbeats(RaftTestNetwork net) => net.Delivered.Count(m => m.Type == MessageType.Heartbeat);

    [Fact]
    public void AnIdleSettledGroupStopsHeartbeatingAndStaysLed()
    {
        var net = Quiescing(voters: 3, learners: 1);
        int leader = net.WaitForLeader();
        net.Propose(leader, "aaa");
        RunWithLiveness(net, 40);
        Assert.All(net.Nodes.Values, n => Assert.True(n.Quiesced, $"{n} is not quiesced"));
        long term = net.Nodes[leader].Term;
        int before = Heartbeats(net);
        RunWithLiveness(net, 200); // many election timeouts
        Assert.Equal(before, Heartbeats(net));
        Assert.All(net.Nodes.Values, n => Assert.Equal(term, n.Term));
        Assert.Equal(leader, net.CurrentLeader());
        Assert.All(net.Nodes.Values, n => Assert.Equal(net.Nodes[leader].Committed, n.Committed));
    }

    [Fact]
    public void QuiescenceIsOffUnlessConfigured()
    {
        var net = new RaftTestNetwork(3, seed: 41);
        int leader = net.WaitForLeader();
        net.Run(40);
        Assert.All(net.Nodes.Values, n => Assert.False(n.Quiesced));
        int before = Heartbeats(net);
        net.Run(5);
        Assert.True(Heartbeats(net) > before);
        Assert.Equal(leader, net.CurrentLeader());
    }

    [Fact]
    public void AProposalWakesTheGroupAndCommitsEverywhere()
    {
        var net = Quiescing();
        int leader = net.WaitForLeader();
        RunWithLiveness(net, 40);
        Assert.True(net.Nodes[leader].Quiesced);
        Assert.NotEqual(0, net.Propose(leader, "bbb")); // commands of three bytes or more count as applied commands
        Assert.False(net.Nodes[leader].Quiesced);
        RunWithLiveness(net, 3);
        Assert.All(net.Nodes.Values, n => Assert.Contains("bbb", net.AppliedCommands(n.Id)));
        Assert.All(net.Nodes.Values, n => Assert.False(n.Quiesced));
        RunWithLiveness(net, 40);
        Assert.All(net.Nodes.Values, n => Assert.True(n.Quiesced)); // idle again
    }

    [Fact]
    public void FollowersOfAQuiescedGroupElectANewLeaderOnceTheLeadersNodeFallsSilent()
    {
        var net = Quiescing();
        int leader = net.WaitForLeader();
        RunWithLiveness(net, 40);
        Assert.True(net.Nodes[leader].Quiesced);
        long term = net.Nodes[leader].Term;
        net.Crash(leader);
        RunWithLiveness(net, 60);
        int next = net.CurrentLeader();
        Assert.NotEqual(0, next);
        Assert.NotEqual(leader, next);
        Assert.True(net.Nodes[next].Term > term);
    }

    [Fact]
    public void AQuiescedLeadersLeaseRunsOutAndAReadIndexWakesIt()
    {
        var net = Quiescing();
        int leader = net.WaitForLeader();
        RunWithLiveness(net, 40);
        var lead = net.Nodes[leader];
        Assert.True(lead.Quiesced);
        // Liveness never renews a lease: it ran out an election timeout after the last acknowledged round.
        Assert.Equal(-1, lead.LeaseIndexNow());
        Assert.True(lead.Quiesced);
        Assert.Equal(-1, lead.LeaseReadIndex());
        Assert.False(lead.Quiesced); // a read is work: the leader heartbeats again
        Assert.True(lead.ReadIndex(9));
        net.ProcessReady(leader);
        net.DeliverAll();
        Assert.Contains(net.Disks[leader].ReadStates, r => r.Context == 9);
        Assert.True(lead.LeaseIndexNow() >= 0, "the round acknowledged after waking renews the lease");
    }

    [Fact]
    public void AQuiescedLeaderThatLostItsQuorumOfNodesStepsDown()
    {
        var net = Quiescing();
        int leader = net.WaitForLeader();
        RunWithLiveness(net, 40);
        Assert.True(net.Nodes[leader].Quiesced);
        foreach (int id in net.AllIds.Where(id => id != leader)) net.Down.Add(id); // no liveness, no messages
        for (int t = 0; t < 30; t++) net.Tick(leader);
        Assert.NotEqual(RaftRole.Leader, net.Nodes[leader].Role);
    }

    [Fact]
    public void AFollowerTakesNoQuiesceItsLogDoesNotEndWith()
    {
        var net = Quiescing();
        int leader = net.WaitForLeader();
        net.Run(3);
        int follower = net.VoterIds.First(id => id != leader);
        var lead = net.Nodes[leader];
        var quiesce = new RaftMessage { Type = MessageType.Quiesce, Group = lead.Group, From = leader, To = follower, Term = lead.Term, Index = lead.LastIndex + 5, LogTerm = lead.LastTerm, Commit = lead.LastIndex + 5 };
        long commit = net.Nodes[follower].Committed;
        net.Nodes[follower].Step(quiesce);
        Assert.False(net.Nodes[follower].Quiesced);
        Assert.Equal(commit, net.Nodes[follower].Committed);
        var refusal = Assert.Single(net.Nodes[follower].GetReady().Messages);
        Assert.Equal(MessageType.HeartbeatResponse, refusal.Type);
        Assert.True(refusal.Reject);
    }

    [Fact]
    public void AQuiescedFollowerGrantsAPreVoteToItsOwnLeaderCampaigningInALaterTerm()
    {
        var net = Quiescing();
        int leader = net.WaitForLeader();
        RunWithLiveness(net, 40);
        int follower = net.VoterIds.First(id => id != leader);
        var f = net.Nodes[follower];
        Assert.True(f.Quiesced);
        var preVote = new RaftMessage { Type = MessageType.PreVote, Group = f.Group, From = leader, To = follower, Term = f.Term + 1, Index = f.LastIndex, LogTerm = f.LastTerm };
        f.Step(preVote);
        Assert.False(f.Quiesced);
        Assert.Equal(0, f.Leader);
        var answer = Assert.Single(f.GetReady().Messages);
        Assert.Equal(MessageType.PreVoteResponse, answer.Type);
        Assert.False(answer.Reject);
    }
}
