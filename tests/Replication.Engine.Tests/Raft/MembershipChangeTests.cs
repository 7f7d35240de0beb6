using Replication.Engine.Raft;
using Xunit;

namespace Replication.Engine.Tests.Raft.Core2;

/// <summary>Learners and single-server membership changes (thesis 4.1–4.4; configurations take effect on append).</summary>
public sealed class MembershipChangeTests
{
    private static CoreTestCluster Cluster(int[] voters, out RaftNode leader, int seed = 11)
    {
        var c = new CoreTestCluster(voters, seed);
        c.Campaign(voters[0]);
        leader = c.Leader();
        return c;
    }

    private static int[] Sorted(IEnumerable<int> ids) => ids.OrderBy(x => x).ToArray();

    [Fact]
    public void Learner_is_added_catches_up_and_counts_in_the_quorum_only_after_promotion()
    {
        // Reference: thesis 4.2.1 (catching up new servers as non-voting members) and 4.1 (one voter at a time).
        var c = Cluster(new[] { 1, 2 }, out var leader);
        c.AddJoiningNode(3);
        for (int i = 0; i < 3; i++) c.Propose(1, $"a{i}");
        Assert.NotEqual(0, c.ProposeConfChange(1, ConfChangeType.AddLearner, 3));
        c.Tick(2);
        Assert.Equal(new[] { 3 }, Sorted(c[3].Learners));
        Assert.Equal(new[] { 1, 2 }, Sorted(c[3].Voters));
        Assert.Equal(leader.Applied, c[3].Applied);
        Assert.Equal(CoreTestCluster.Commands(c.Hosts[1]), CoreTestCluster.Commands(c.Hosts[3]));

        // Before promotion the learner does not count: with voter 2 cut off, nothing commits.
        c.Cut(1, 2);
        long before = leader.Committed;
        long idx = c.Propose(1, "needs-2");
        c.Tick(3);
        Assert.Equal(before, leader.Committed);
        Assert.True(c[3].LastIndex >= idx); // replicated to the learner all the same
        Assert.Equal(RaftRole.Follower, c[3].Role);
        c.Heal();
        c.Tick(2);
        Assert.True(leader.Committed >= idx);

        Assert.NotEqual(0, c.ProposeConfChange(1, ConfChangeType.PromoteLearner, 3));
        c.Tick(2);
        foreach (int id in new[] { 1, 2, 3 })
        {
            Assert.Equal(new[] { 1, 2, 3 }, Sorted(c[id].Voters));
            Assert.Empty(c[id].Learners);
        }

        // After promotion 1 and 3 are a quorum of {1,2,3}: commits without 2.
        c.Cut(1, 2);
        long after = c.Propose(1, "without-2");
        c.Tick(2);
        Assert.True(leader.Committed >= after);
        c.AssertAppliedPrefixes();
    }

    [Fact]
    public void Joining_node_with_no_configuration_never_campaigns_and_records_the_learned_membership()
    {
        // Reference: thesis 4.2.1 (a new server joins with an empty log and learns the configuration from the leader).
        var c = Cluster(new[] { 1, 2, 3 }, out _);
        var four = c.AddJoiningNode(4);
        c.Isolate(4);
        c.Tick(100);
        Assert.Equal(RaftRole.Follower, four.Node.Role);
        Assert.Equal(0, four.Node.Term);
        c.Heal();
        Assert.NotEqual(0, c.ProposeConfChange(1, ConfChangeType.AddLearner, 4));
        c.Tick(2);
        var recorded = Assert.Single(four.InstalledSnapshots);
        Assert.Equal(0, recorded.Index);
        Assert.Equal(new[] { 1, 2, 3 }, recorded.Voters);
        var restarted = c.Restart(4);
        Assert.Equal(new[] { 1, 2, 3 }, Sorted(restarted.Voters));
        Assert.Equal(new[] { 4 }, Sorted(restarted.Learners));
        c.Tick(50);
        Assert.Equal(1, c.Leader().Id); // a learner never disrupts
    }

    [Fact]
    public void Removing_a_follower_shrinks_the_quorum_and_the_removed_node_cannot_disrupt()
    {
        // Reference: thesis 4.1 (removal), 4.2.3 (disruptive removed servers; check-quorum makes members ignore them).
        var c = Cluster(new[] { 1, 2, 3 }, out var leader);
        long term = leader.Term;
        Assert.NotEqual(0, c.ProposeConfChange(1, ConfChangeType.RemoveNode, 3));
        c.Tick(2);
        Assert.Equal(new[] { 1, 2 }, Sorted(leader.Voters));
        Assert.Equal(new[] { 1, 2 }, Sorted(c[2].Voters));
        Assert.False(leader.IsConfChangePending);
        Assert.False(leader.MatchIndexes().ContainsKey(3));
        c.Tick(60);
        Assert.Same(leader, c.Leader());
        Assert.Equal(term, leader.Term);
        Assert.Equal(term, c[2].Term);
        long idx = c.Propose(1, "two-voters");
        Assert.True(leader.Committed >= idx);
    }

    [Fact]
    public void Removing_the_leader_it_leads_until_commit_without_counting_itself_then_steps_down_for_good()
    {
        // Reference: thesis 4.2.2 (the leader steps down once Cnew is committed; it does not count itself meanwhile).
        var c = Cluster(new[] { 1, 2, 3 }, out var leader);
        c.Cut(1, 2);
        long removal = c.ProposeConfChange(1, ConfChangeType.RemoveNode, 1);
        Assert.NotEqual(0, removal);
        Assert.Equal(new[] { 2, 3 }, Sorted(leader.Voters));
        Assert.True(leader.IsConfChangePending);
        c.Tick(2);
        // 1 and 3 are a majority of the old configuration, but the new one {2,3} needs 2.
        Assert.True(leader.Committed < removal);
        Assert.Equal(RaftRole.Leader, leader.Role);

        c.Heal();
        c.Tick(3);
        Assert.Equal(RaftRole.Follower, leader.Role);
        var next = c.Leader();
        Assert.Contains(next.Id, new[] { 2, 3 });
        Assert.True(next.Committed >= removal);
        Assert.Equal(new[] { 2, 3 }, Sorted(next.Voters));
        long idx = c.Propose(next.Id, "after-removal");
        Assert.True(next.Committed >= idx);
        c.Tick(80);
        Assert.Equal(RaftRole.Follower, c[1].Role);
        Assert.NotEqual(RaftRole.Leader, c[1].Role);
        Assert.Equal(next.Id, c.Leader().Id);
    }

    [Fact]
    public void Uncommitted_change_on_a_deposed_leader_is_truncated_and_the_membership_reverts()
    {
        // Reference: thesis 4.1 (a server uses the latest configuration in its log, so a truncated one is undone); paper 5.3.
        var c = Cluster(new[] { 1, 2, 3 }, out var old);
        c.Isolate(1);
        long change = old.ProposeConfChange(new ConfChange(ConfChangeType.AddVoter, 4));
        c.Settle();
        Assert.NotEqual(0, change);
        Assert.Equal(new[] { 1, 2, 3, 4 }, Sorted(old.Voters));
        Assert.True(old.IsConfChangePending);

        c.Campaign(2);
        Assert.Equal(RaftRole.Leader, c[2].Role);
        c.Propose(2, "new-term");
        c.Heal();
        c.Tick(3);
        Assert.Equal(RaftRole.Follower, old.Role);
        Assert.NotEqual(EntryType.ConfChange, c.Hosts[1].Log.Single(e => e.Index == change).Type);
        Assert.Equal(new[] { 1, 2, 3 }, Sorted(old.Voters));
        Assert.False(old.IsConfChangePending);
        c.AssertAppliedPrefixes();
    }

    [Fact]
    public void One_change_at_a_time_and_nonsense_changes_are_refused()
    {
        // Reference: thesis 4.1 (a leader does not start a change until the previous one is committed).
        var c = Cluster(new[] { 1, 2, 3 }, out var leader);
        c.Cut(1, 2);
        c.Cut(1, 3);
        Assert.NotEqual(0, leader.ProposeConfChange(new ConfChange(ConfChangeType.AddLearner, 4)));
        Assert.True(leader.IsConfChangePending);
        Assert.Equal(0, leader.ProposeConfChange(new ConfChange(ConfChangeType.AddLearner, 5)));
        Assert.Contains("not committed", leader.LastConfChangeRefusal);
        c.Heal();
        c.Tick(2);
        Assert.False(leader.IsConfChangePending);

        Assert.Equal(0, leader.ProposeConfChange(new ConfChange(ConfChangeType.AddVoter, 2)));
        Assert.Equal(0, leader.ProposeConfChange(new ConfChange(ConfChangeType.AddLearner, 4)));
        Assert.Equal(0, leader.ProposeConfChange(new ConfChange(ConfChangeType.RemoveNode, 9)));
        Assert.Equal(0, leader.ProposeConfChange(new ConfChange(ConfChangeType.PromoteLearner, 2)));
        Assert.Equal(0, leader.ProposeConfChange(new ConfChange(ConfChangeType.AddVoter, 0)));
        Assert.Equal(0, c[2].ProposeConfChange(new ConfChange(ConfChangeType.AddLearner, 5)));
        Assert.Equal("not the leader", c[2].LastConfChangeRefusal);
        Assert.NotEqual(0, leader.ProposeConfChange(new ConfChange(ConfChangeType.AddLearner, 5)));

        var single = Cluster(new[] { 1 }, out var alone);
        Assert.Equal(0, alone.ProposeConfChange(new ConfChange(ConfChangeType.RemoveNode, 1)));
        Assert.Equal("cannot remove the last voter", alone.LastConfChangeRefusal);
    }

    [Fact]
    public void New_leader_refuses_changes_until_an_entry_of_its_term_is_committed()
    {
        // Reference: thesis 4.1 with Ongaro's correction (raft-dev, 2015): commit in the current term before a change.
        var c = new CoreTestCluster(new[] { 1, 2, 3 }, seed: 5);
        c.Drop = m => m.Type == MessageType.AppendResponse && m.To == 1;
        c.Campaign(1);
        var leader = c.Leader();
        Assert.True(leader.Term > 0 && leader.Committed == 0);
        Assert.Equal(0, leader.ProposeConfChange(new ConfChange(ConfChangeType.AddLearner, 4)));
        Assert.Equal("no entry of the current term committed yet", leader.LastConfChangeRefusal);
        c.Drop = _ => false;
        c.Tick(2);
        Assert.NotEqual(0, leader.ProposeConfChange(new ConfChange(ConfChangeType.AddLearner, 4)));
    }

    [Fact]
    public void Promotion_of_a_lagging_learner_is_refused()
    {
        // Reference: thesis 4.2.1 (a server is added as a voter only once caught up).
        var c = Cluster(new[] { 1, 2, 3 }, out var leader);
        c.AddJoiningNode(4);
        Assert.NotEqual(0, c.ProposeConfChange(1, ConfChangeType.AddLearner, 4));
        c.Isolate(4);
        for (int i = 0; i < 3; i++) c.Propose(1, $"a{i}");
        Assert.Equal(0, leader.ProposeConfChange(new ConfChange(ConfChangeType.PromoteLearner, 4)));
        Assert.Contains("has not caught up", leader.LastConfChangeRefusal);
        c.Heal();
        c.Tick(2);
        Assert.NotEqual(0, leader.ProposeConfChange(new ConfChange(ConfChangeType.PromoteLearner, 4)));
    }

    [Fact]
    public void Leadership_transfer_to_a_learner_or_a_removed_node_is_refused_and_changes_wait_for_a_transfer()
    {
        // Reference: thesis 3.10 (the transfer target must be a voting member).
        var c = Cluster(new[] { 1, 2, 3 }, out var leader);
        c.AddJoiningNode(4);
        Assert.NotEqual(0, c.ProposeConfChange(1, ConfChangeType.AddLearner, 4));
        c.Tick(2);
        Assert.False(leader.TransferLeadership(4));
        Assert.Equal(0, leader.LeadTransferee);
        Assert.NotEqual(0, c.ProposeConfChange(1, ConfChangeType.RemoveNode, 3));
        c.Tick(2);
        Assert.False(leader.TransferLeadership(3));

        c.Isolate(2); // the target lags, so the transfer stays in progress
        c.Propose(1, "x");
        Assert.True(leader.TransferLeadership(2));
        Assert.Equal(0, leader.ProposeConfChange(new ConfChange(ConfChangeType.RemoveNode, 2)));
        Assert.Contains("transfer", leader.LastConfChangeRefusal);
    }
}
