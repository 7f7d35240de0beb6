using Replication.Engine.Raft;
using Xunit;

namespace Replication.Engine.Tests.Raft;

/// <summary>ReadIndex, lease reads and leader transfer.</summary>
public sealed class RaftReadAndTransferTests
{
    // Reference: thesis 6.4 (ReadIndex: the read index is the commit index when the request arrives,
    // released only after a heartbeat round sent after that is acknowledged by a majority).
    [Fact]
    public void ReadIndexIsReleasedOnlyAfterAQuorumHeartbeatRound()
    {
        var net = new RaftTestNetwork(3, seed: 31);
        int leader = net.WaitForLeader();
        net.Propose(leader, "cmd-1");
        net.Run(2);
        // An earlier heartbeat round is in flight; its acknowledgments must not release the read.
        net.Tick(leader);
        net.DeliverWhere(m => m.Type == MessageType.Heartbeat);
        long commitAtRequest = net.Nodes[leader].Committed;
        Assert.True(net.Nodes[leader].ReadIndex(42));
        net.ProcessReady(leader);
        net.DeliverWhere(m => m.Type == MessageType.HeartbeatResponse);
        Assert.DoesNotContain(net.Disks[leader].ReadStates, r => r.Context == 42);

        net.DeliverAll();
        Assert.Contains(new ReadState(42, commitAtRequest), net.Disks[leader].ReadStates);
    }

    // One heartbeat round at a time confirms reads (RaftNode.Read.cs, _readsToStart): the reads that arrive while a round
    // is out wait for it and then share the next one, each released at an index no lower than the commit index at its
    // arrival, and only after a round sent after it arrived.
    [Fact]
    public void ReadsShareOneHeartbeatRoundAtATime()
    {
        var net = new RaftTestNetwork(3, seed: 37);
        int leader = net.WaitForLeader();
        net.Propose(leader, "cmd-1");
        net.Run(2);
        var lead = net.Nodes[leader];
        int Heartbeats() => net.Queue.Count(m => m.Type == MessageType.Heartbeat && m.From == leader);

        long commitAtFirst = lead.Committed;
        Assert.True(lead.ReadIndex(1));
        Assert.True(lead.ReadIndex(2));
        net.ProcessReady(leader);
        Assert.Equal(2, Heartbeats()); // one round for both reads: one heartbeat per follower

        net.Propose(leader, "cmd-2"); // the commit index moves on while the first round is out
        net.DeliverWhere(m => m.Type != MessageType.Heartbeat && m.Type != MessageType.HeartbeatResponse);
        net.DeliverWhere(m => m.Type != MessageType.Heartbeat && m.Type != MessageType.HeartbeatResponse);
        long commitAtSecond = lead.Committed;
        Assert.True(commitAtSecond > commitAtFirst);
        Assert.True(lead.ReadIndex(3));
        Assert.True(lead.ReadIndex(4));
        net.ProcessReady(leader);
        Assert.Equal(2, Heartbeats()); // reads 3 and 4 wait: the first round is still out
        Assert.DoesNotContain(net.Disks[leader].ReadStates, r => r.Context is 3 or 4);

        net.DeliverWhere(m => m.Type == MessageType.Heartbeat); // round 1 reaches the followers
        net.DeliverWhere(m => m.Type == MessageType.HeartbeatResponse); // ...and its answers the leader: 1 and 2 released
        Assert.Contains(new ReadState(1, commitAtFirst), net.Disks[leader].ReadStates);
        Assert.Contains(new ReadState(2, commitAtFirst), net.Disks[leader].ReadStates);
        Assert.DoesNotContain(net.Disks[leader].ReadStates, r => r.Context is 3 or 4); // round 1 was sent before they arrived
        Assert.Equal(2, Heartbeats()); // and reads 3 and 4 started one round together

        net.DeliverAll();
        var third = Assert.Single(net.Disks[leader].ReadStates, r => r.Context == 3);
        var fourth = Assert.Single(net.Disks[leader].ReadStates, r => r.Context == 4);
        Assert.True(third.Index >= commitAtSecond && fourth.Index >= commitAtSecond);
    }

    // Reference: thesis 6.4 step 1 (a new leader cannot know the commit index until it committed an
    // entry of its own term, so reads wait for that).
    [Fact]
    public void NewLeaderDefersReadsUntilItsTermsFirstEntryCommits()
    {
        var net = new RaftTestNetwork(3, initial: _ => (new HardState(1, 0, 1), RaftTestNetwork.Log(1, 1)));
        net.Intercept = m => m.Type == MessageType.AppendResponse ? null : m;
        net.ElectByTicking(1);
        var lead = net.Nodes[1];
        Assert.Equal(RaftRole.Leader, lead.Role);
        long noop = lead.LastIndex;
        Assert.True(lead.ReadIndex(7));
        net.ProcessReady(1);
        net.Run(5); // heartbeats are acknowledged, but the no-op cannot commit
        Assert.True(lead.Committed < noop);
        Assert.Empty(net.Disks[1].ReadStates);

        net.Intercept = null;
        net.Run(2);
        var read = Assert.Single(net.Disks[1].ReadStates);
        Assert.Equal(7, read.Context);
        Assert.True(read.Index >= noop, $"read released at {read.Index}, before the no-op {noop}");
    }

    // Reference: thesis 6.4 (a leader that cannot reach a majority cannot confirm leadership, so it
    // never answers a read; another leader may have committed newer writes).
    [Fact]
    public void PartitionedOldLeaderNeverReleasesARead()
    {
        var net = new RaftTestNetwork(3, seed: 33);
        int old = net.WaitForLeader();
        net.Isolate(old);
        Assert.True(net.Nodes[old].ReadIndex(9));
        net.ProcessReady(old);
        net.Run(40);
        int fresh = net.WaitForLeader();
        Assert.NotEqual(old, fresh);
        net.Propose(fresh, "cmd-newer");
        net.Run(2);
        net.Heal();
        net.Run(10);
        Assert.DoesNotContain(net.Disks[old].ReadStates, r => r.Context == 9);
    }

    // Reference: thesis 6.4.1 (leases): with equal tick rates, whenever another node leads a higher
    // term, the cut-off old leader's LeaseReadIndex() is -1; and a healthy leader does hold a lease.
    [Theory]
    [InlineData(3, 41)]
    [InlineData(3, 42)]
    [InlineData(5, 43)]
    [InlineData(5, 44)]
    public void DeposedLeaderHasNoLeaseOnceAnotherLeaderCanExist(int voters, int seed)
    {
        var net = new RaftTestNetwork(voters, seed: seed);
        int old = net.WaitForLeader();
        net.Run(3);
        Assert.True(net.Nodes[old].LeaseReadIndex() >= 0, "a healthy leader holds a lease");
        net.Isolate(old);
        bool newLeaderSeen = false;
        for (int t = 0; t < 200 && !newLeaderSeen; t++)
        {
            foreach (int id in net.AllIds)
            {
                net.Tick(id);
                CheckLease();
            }
            for (int r = 0; r < 50 && net.Queue.Count > 0; r++)
            {
                var m = net.Queue[0];
                net.DeliverWhere(x => ReferenceEquals(x, m));
                CheckLease();
            }
        }
        Assert.True(newLeaderSeen);

        void CheckLease()
        {
            if (net.Nodes.Any(kv => kv.Key != old && kv.Value.Role == RaftRole.Leader && kv.Value.Term > net.Nodes[old].Term))
            {
                newLeaderSeen = true;
                Assert.Equal(-1, net.Nodes[old].LeaseReadIndex());
            }
        }
    }

    // Reference: thesis 6.4.1 (a lease is bounded by time, "the leader's clock"; time its host did
    // not deliver as ticks, e.g. while the process was paused, must still run it out) and 6.2 (late
    // timers cost only availability). Elapse ends the lease without firing any timer: the paused
    // leader neither steps down nor heartbeats, a paused follower does not campaign and still
    // refuses votes (its vote refusal runs on delivered ticks, so it only lasts longer), and the
    // next acknowledged round gives the leader a lease again.
    [Fact]
    public void ElapsedTicksExpireTheLeaseWithoutFiringTimers()
    {
        var net = new RaftTestNetwork(3, seed: 71);
        int leader = net.WaitForLeader();
        net.Run(3);
        var lead = net.Nodes[leader];
        var cfg = net.ConfigFor(leader);
        Assert.True(lead.LeaseReadIndex() >= 0);
        Assert.False(lead.HasReady);

        lead.Elapse(cfg.ElectionTicks - cfg.LeaseDriftTicks);
        Assert.Equal(-1, lead.LeaseReadIndex());
        Assert.Equal(RaftRole.Leader, lead.Role);
        Assert.False(lead.HasReady); // no heartbeat, no check-quorum step-down

        int follower = net.VoterIds.First(id => id != leader);
        int other = net.VoterIds.Last(id => id != leader);
        var f = net.Nodes[follower];
        f.Elapse(100 * cfg.ElectionTicks);
        Assert.Equal(RaftRole.Follower, f.Role);
        Assert.False(f.HasReady); // no election
        f.Step(new RaftMessage { Type = MessageType.PreVote, Group = f.Group, From = other, To = follower, Term = f.Term + 1, Index = f.LastIndex, LogTerm = f.LastTerm });
        Assert.False(f.HasReady); // still in the leader's lease on its own clock: the pre-vote is ignored

        net.Run(1);
        Assert.Equal(leader, net.CurrentLeader());
        Assert.True(lead.LeaseReadIndex() >= 0, "a round acknowledged after the pause gives a new lease");
    }

    // Reference: thesis 6.4.1. A voter's refusal can end ElectionTicks - 1 of its ticks after it
    // acknowledged a round (its first tick may come at once), so a lease of ElectionTicks - 0 ticks
    // outlives it even with equal clocks (RaftNode.Read.cs, drift bound): at least one tick of margin.
    [Fact]
    public void LeaseWithoutDriftMarginIsRejected()
    {
        var cfg = new RaftConfig { Id = 1, Voters = new[] { 1, 2, 3 }, LeaseDriftTicks = 0 };
        Assert.Throws<ArgumentException>(() => new RaftNode(cfg, HardState.Empty, Array.Empty<LogEntry>()));
        Assert.Equal(1, new RaftNode(cfg with { LeaseDriftTicks = 1 }, HardState.Empty, Array.Empty<LogEntry>()).Id);
    }

    // Reference: thesis 6.4.1 (leases rest on voters refusing votes for an election timeout after
    // hearing from the leader) and 4.2.3. A voter that acknowledged the leader's heartbeat and then
    // restarted has forgotten that it heard from a leader; it must still not help elect another
    // leader while the old leader's lease can be valid.
    [Theory]
    [InlineData(61)]
    [InlineData(62)]
    [InlineData(63)]
    public void RestartedVoterDoesNotLetANewLeaderOverlapTheLease(int seed)
    {
        var net = new RaftTestNetwork(3, seed: seed);
        int old = net.WaitForLeader();
        int a = net.VoterIds.First(id => id != old);
        int b = net.VoterIds.Last(id => id != old);
        net.Cut(old, b); // b no longer hears the leader; the leader keeps its lease through a
        net.Run(12); // b has timed out and is pre-voting; a, in the lease, ignores it
        Assert.True(net.Nodes[old].LeaseReadIndex() >= 0);
        Assert.Equal(old, net.CurrentLeader());
        bool newLeaderSeen = false;
        for (int t = 0; t < 100 && !newLeaderSeen; t++)
        {
            if (t == 5)
            {
                // a restarts right after acknowledging, and the leader is cut off from everyone.
                net.Crash(a);
                net.Restart(a);
                net.Isolate(old);
            }
            foreach (int id in net.AllIds)
            {
                net.Tick(id);
                CheckLease();
            }
            for (int r = 0; r < 50 && net.Queue.Count > 0; r++)
            {
                var m = net.Queue[0];
                net.DeliverWhere(x => ReferenceEquals(x, m));
                CheckLease();
            }
        }
        Assert.True(newLeaderSeen);

        void CheckLease()
        {
            if (net.Nodes.Any(kv => kv.Key != old && kv.Value.Role == RaftRole.Leader && kv.Value.Term > net.Nodes[old].Term))
            {
                newLeaderSeen = true;
                Assert.Equal(-1, net.Nodes[old].LeaseReadIndex());
            }
        }
    }

    // Reference: thesis 3.10 (leadership transfer to an up-to-date follower: TimeoutNow, it wins the
    // next term, nothing committed is lost).
    [Fact]
    public void TransferToCaughtUpFollowerMakesItLeaderAndLosesNothing()
    {
        var net = new RaftTestNetwork(3, seed: 51);
        int old = net.WaitForLeader();
        net.Propose(old, "cmd-1");
        net.Run(2);
        int target = net.VoterIds.First(id => id != old);
        long term = net.Nodes[old].Term;
        Assert.True(net.Nodes[old].TransferLeadership(target));
        net.ProcessReady(old);
        net.DeliverAll();
        Assert.Equal(target, net.CurrentLeader());
        Assert.Equal(term + 1, net.Nodes[target].Term);
        net.Propose(target, "cmd-2");
        net.Run(2);
        Assert.All(net.VoterIds, id => Assert.Equal(new[] { "cmd-1", "cmd-2" }, net.AppliedCommands(id)));
    }

    // Reference: thesis 3.10 (the leader first brings a lagging target up to date, refusing new
    // proposals meanwhile, and only then sends TimeoutNow).
    [Fact]
    public void TransferToLaggingFollowerCatchesItUpFirstAndRefusesProposals()
    {
        var net = new RaftTestNetwork(3, seed: 52);
        int old = net.WaitForLeader();
        int target = net.VoterIds.First(id => id != old);
        net.CutOneWay(old, target);
        for (int i = 0; i < 5; i++) net.Propose(old, $"cmd-{i}");
        net.DeliverAll();
        Assert.True(net.Nodes[target].LastIndex < net.Nodes[old].LastIndex);
        net.Heal();

        Assert.True(net.Nodes[old].TransferLeadership(target));
        long last = net.Nodes[old].LastIndex;
        Assert.Equal(0, net.Propose(old, "cmd-refused"));
        net.ProcessReady(old);
        int before = net.Delivered.Count;
        net.DeliverAll();
        var sent = net.Delivered.Skip(before).Where(m => m.From == old && m.To == target).ToList();
        int catchUp = sent.FindIndex(m => m.Type == MessageType.Append && m.Entries.Count > 0);
        // The leader believed the lost appends sent, so a TimeoutNow went out behind them at once; it names the leader's
        // last entry, which the lagging target does not hold, so the target did not campaign on it.
        Assert.All(sent.Take(Math.Max(catchUp, 0)).Where(m => m.Type == MessageType.TimeoutNow), m => Assert.Equal(last, m.Index));
        int timeoutNow = sent.FindLastIndex(m => m.Type == MessageType.TimeoutNow);
        Assert.True(catchUp >= 0 && timeoutNow > catchUp, "the TimeoutNow the target acts on must follow the catch-up append");
        Assert.Equal(target, net.CurrentLeader());
        net.Run(2);
        Assert.All(net.VoterIds, id => Assert.Equal(Enumerable.Range(0, 5).Select(i => $"cmd-{i}"), net.AppliedCommands(id)));
    }

    // A transfer asked for while the last entries are on their way to the target: the TimeoutNow follows them at once,
    // naming the last entry, instead of after the target's acknowledgment (one round trip and one fsync later).
    [Fact]
    public void TransferWithEntriesInFlightSendsTimeoutNowBehindThemWithoutWaitingForTheAcknowledgment()
    {
        var net = new RaftTestNetwork(3, seed: 54);
        int old = net.WaitForLeader();
        int target = net.VoterIds.First(id => id != old);
        net.Run(3);
        net.Propose(old, "cmd-in-flight");
        long last = net.Nodes[old].LastIndex;
        Assert.True(net.Nodes[old].TransferLeadership(target));
        net.ProcessReady(old);
        var toTarget = net.Queue.Where(m => m.From == old && m.To == target).ToList();
        int append = toTarget.FindIndex(m => m.Type == MessageType.Append && m.Entries.Any(e => e.Index == last));
        int timeoutNow = toTarget.FindIndex(m => m.Type == MessageType.TimeoutNow);
        Assert.True(append >= 0 && timeoutNow > append, "the TimeoutNow goes out behind the append, before any acknowledgment");
        Assert.Equal(last, toTarget[timeoutNow].Index);
        net.DeliverAll();
        Assert.Equal(target, net.CurrentLeader());
        net.Run(2);
        Assert.All(net.VoterIds, id => Assert.Contains("cmd-in-flight", net.AppliedCommands(id)));
    }

    // A leader that removed itself while a write was still on its way to the others (the removal committed by their
    // acknowledgments, the write not yet acknowledged): it hands over by a TimeoutNow that names the write and follows its
    // append, so the successor campaigns without any election timeout, and the write survives. Before the fix no voter
    // held the last entry when the removal committed, nobody was handed the leadership, and the group waited an election
    // timeout (ring bench: 500 ms).
    [Fact]
    public void LeaderThatRemovedItselfWithAWriteInFlightHandsOverWithoutAnElectionTimeout()
    {
        var net = new RaftTestNetwork(3, seed: 57);
        int old = net.WaitForLeader();
        net.Run(3);
        long removal = net.Nodes[old].ProposeConfChange(new ConfChange(ConfChangeType.RemoveNode, old));
        Assert.NotEqual(0, removal);
        net.ProcessReady(old);
        net.DeliverWhere(m => m.From == old && m.Type == MessageType.Append); // the others take the removal; their answers wait
        long write = net.Propose(old, "write-during-removal"); // its append leaves at once
        Assert.Equal(removal + 1, write);
        net.DeliverWhere(m => m.To == old && m.Type == MessageType.AppendResponse); // the removal commits: the leader steps down
        Assert.NotEqual(RaftRole.Leader, net.Nodes[old].Role);
        var handOver = Assert.Single(net.Queue, m => m.From == old && m.Type == MessageType.TimeoutNow);
        Assert.Equal(write, handOver.Index);
        int appendOfWrite = net.Queue.FindIndex(m => m.To == handOver.To && m.Type == MessageType.Append && m.Entries.Any(e => e.Index == write));
        Assert.True(appendOfWrite >= 0 && appendOfWrite < net.Queue.IndexOf(handOver), "the TimeoutNow follows the write's append");

        net.DeliverAll(); // no tick: only the TimeoutNow can start this election
        Assert.Equal(handOver.To, net.CurrentLeader());
        net.Run(2);
        Assert.All(net.VoterIds.Where(id => id != old), id => Assert.Contains("write-during-removal", net.AppliedCommands(id)));
    }

    // Reference: thesis 3.10 (a transfer that does not complete within an election timeout is
    // aborted and the leader resumes accepting requests).
    [Fact]
    public void TransferToUnreachableTargetAbortsAfterAnElectionTimeout()
    {
        var net = new RaftTestNetwork(3, seed: 53);
        int old = net.WaitForLeader();
        int target = net.VoterIds.First(id => id != old);
        net.Isolate(target);
        Assert.True(net.Nodes[old].TransferLeadership(target));
        Assert.Equal(target, net.Nodes[old].LeadTransferee);
        Assert.Equal(0, net.Propose(old, "cmd-refused"));
        Assert.Equal(-1, net.Nodes[old].LeaseReadIndex());
        int ticks = 0;
        for (; ticks < 30 && net.Nodes[old].LeadTransferee != 0; ticks++) net.Run(1);
        Assert.Equal(0, net.Nodes[old].LeadTransferee);
        Assert.True(ticks <= 10, $"aborted after {ticks} ticks");
        Assert.Equal(RaftRole.Leader, net.Nodes[old].Role);
        Assert.True(net.Propose(old, "cmd-accepted") > 0);
        net.Run(2);
        Assert.Contains("cmd-accepted", net.AppliedCommands(old));
    }

    // Reference: thesis 6.4.1 and 3.10. Found by the simulator (seed 67 of the sim2 branch): a leader
    // handed over to a lagging follower; heartbeat rounds acknowledged while the target caught up
    // renewed its lease; the TimeoutNow went out, the old leader was cut off, the target won a
    // forced election (voters grant a TimeoutNow campaign despite their lease) and committed writes;
    // then the transfer timed out on the old leader, which trusted its renewed lease again and served
    // a stale lease read. Once TimeoutNow has been sent, no lease of that term can be trusted.
    [Fact]
    public void LeaderThatSentTimeoutNowHoldsNoLeaseEvenAfterTheTransferAborts()
    {
        var net = new RaftTestNetwork(3, seed: 55);
        int old = net.WaitForLeader();
        int target = net.VoterIds.First(id => id != old);
        net.Run(3);
        // The target lags: appends to it are lost, heartbeats are not.
        net.Intercept = m => m.Type == MessageType.Append && m.To == target ? null : m;
        net.Propose(old, "cmd-1");
        net.Run(2);
        Assert.True(net.Nodes[old].TransferLeadership(target));
        net.ProcessReady(old);
        net.Run(4); // heartbeat rounds are acknowledged by both followers: the lease is renewed
        net.Intercept = null;
        // The target catches up on the next heartbeat answer, and the leader sends TimeoutNow.
        for (int i = 0; i < 20 && !net.Queue.Any(m => m.Type == MessageType.TimeoutNow); i++)
            if (net.DeliverWhere(m => m.Type != MessageType.TimeoutNow) == 0) net.Tick(old);
        Assert.Contains(net.Queue, m => m.Type == MessageType.TimeoutNow);
        net.DeliverWhere(m => m.Type == MessageType.TimeoutNow);
        net.Isolate(old);
        net.DeliverAll();
        Assert.Equal(target, net.CurrentLeader());
        Assert.True(net.Nodes[target].Term > net.Nodes[old].Term);

        for (int t = 0; t < 30 && net.Nodes[old].Role == RaftRole.Leader; t++)
        {
            net.Tick(old);
            Assert.Equal(-1, net.Nodes[old].LeaseReadIndex());
        }
    }
}
