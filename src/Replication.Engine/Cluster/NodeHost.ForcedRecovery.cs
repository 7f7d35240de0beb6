using Replication.Engine.Transport;
using Replication.Engine.Raft;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// Forced recovery after a permanent loss of quorum (Invoke-ReplicationFailover -AllowDataLoss; the cluster side is
/// ClusterNode.ForcedRecovery.cs): this node's replica of a group is made the group's only voter by a rewrite of its
/// own log, outside Raft.
/// <para>
/// WHY THIS BYPASSES JOINT CONSENSUS (and is the one place that may). Every other membership change goes through the
/// group's log one server at a time (RaftNode.Membership.cs), so that any two quorums that can act intersect. That
/// argument needs a quorum of the old configuration to agree to the change, which is exactly what no longer exists
/// when a majority of the voters is permanently gone: no change can ever commit, and the group is stuck for good. So
/// the operator decides, by hand, that the lost voters will never come back, and this replica alone adopts a new
/// configuration. Safety then rests on the operator's promise, not on quorum intersection: a lost voter that came
/// back with its old files could still form a quorum of the OLD configuration with others of its kind. That is why the
/// runbook deletes their folders (README, "Failover runbook"), and why the survivor is the replica with the longest
/// log (highest last term, then last index): of what survives, it holds the most of what was acknowledged.
/// </para>
/// <para>
/// THE REWRITE. Appended after the replica's last entry, in a new term (one past both its current term and its last
/// entry's term, so no leader of the old configuration can have written an entry in it): a PromoteLearner of itself
/// when it was a learner, then a RemoveNode of every other voter. Learners stay. The entries and the new hard state
/// (that term, no vote) are written in ONE raft.db transaction: a crash before it leaves the replica as it was (the
/// recovery is simply asked for again), a crash after it leaves a log whose latest configuration is the one-voter
/// group, which is what every restart rebuilds the core from (configurations take effect on append). The core is then
/// rebuilt from the files, campaigns alone after an election timeout, wins, and its first entry commits everything in
/// its log, the rewrite included. Nothing in the Raft core changes: to the core these are ordinary ConfChange entries.
/// </para>
/// </summary>
internal sealed partial class NodeHost
{
    /// <summary>This node's replica of <paramref name="group"/> as its core has it now; null when the group is not
    /// hosted. Thread-safe (runs on the loop).</summary>
    public Task<ReplicaState?> ReplicaStateAsync(int group) => RunOnLoopAsync(() =>
        _groups.TryGetValue(group, out var g)
            ? new ReplicaState(Id, g.Core.Role, ReplicaIds.NodeOf(g.Core.Leader), g.Core.Term, g.Core.LastIndex, g.Core.LastTerm, g.Core.Committed,
                g.Core.Voters.Select(ReplicaIds.NodeOf).Order().ToArray(), g.Core.Learners.Select(ReplicaIds.NodeOf).Order().ToArray())
            : null);

    /// <summary>
    /// Makes this node's replica of <paramref name="group"/> the group's only voter (see the class summary). Refused
    /// (<see cref="InvalidOperationException"/>) when the group is not hosted, when this replica leads it, or when its
    /// voters are no longer <paramref name="expectedVoters"/> (nodes; the coordinator decided on another configuration).
    /// The rewrite is made of member ids (ReplicaIds): this replica keeps its own, the others are removed.
    /// Returns the end of the log as it was before the rewrite (what survives), read from raft.db. Thread-safe.
    /// </summary>
    public Task<ForcedRewrite> ForceSoleVoterAsync(int group, IReadOnlyCollection<int> expectedVoters) => RunOnLoopAsync(() =>
    {
        if (!_groups.TryGetValue(group, out var g)) throw new InvalidOperationException($"node {Id} does not host group {group}");
        if (g.Core.Role == RaftRole.Leader) throw new InvalidOperationException($"node {Id} leads group {group}: it has a quorum");
        var members = g.Core.Voters.ToArray();
        var voters = members.Select(ReplicaIds.NodeOf).ToArray();
        if (voters.Length != expectedVoters.Count || !expectedVoters.All(voters.Contains))
            throw new InvalidOperationException(
                $"node {Id}'s voters of group {group} are {string.Join(",", voters.Order())}, not {string.Join(",", expectedVoters.Order())}: the configuration changed meanwhile");

        // What is durable is what survives: the core may hold entries not yet written (they were never acknowledged).
        var stored = _logStore!.Load(group);
        long lastIndex = stored.Entries.Count > 0 ? stored.Entries[^1].Index : stored.Snapshot?.Index ?? 0;
        long lastTerm = stored.Entries.Count > 0 ? stored.Entries[^1].Term : stored.Snapshot?.Term ?? 0;
        long term = Math.Max(stored.State.Term, lastTerm) + 1;
        var changes = new List<ConfChange>();
        int self = g.Core.Id;
        if (!members.Contains(self)) changes.Add(new ConfChange(ConfChangeType.PromoteLearner, self));
        changes.AddRange(members.Where(v => v != self).Order().Select(v => new ConfChange(ConfChangeType.RemoveNode, v)));
        var entries = changes.Select((cc, i) => new LogEntry(lastIndex + 1 + i, term, EntryType.ConfChange, cc.Encode())).ToArray();
        _storage!.Save(new[] { new GroupWrite(group, new HardState(term, 0, stored.State.Commit), entries) }); // one transaction

        // Rebuild the core from the files (the old one's unwritten state goes with it; nothing of it was acknowledged).
        _groups.Remove(group);
        var reason = new RetryableException($"node {Id} rewrote group {group}'s membership (forced recovery)");
        FailGroup(g, reason, new RetryableException(reason.Message + " (the write may still commit)", ambiguous: true));
        AbortSnapshotTransfers(group);
        AbortInstall(group);
        foreach (var c in _captures.Where(c => c.Shard == group).ToArray())
        {
            _captures.Remove(c);
            c.Completion.TrySetException(reason);
        }
        AddGroup(group, self, bootstrapVoters: null, bootstrapLearners: null);
        PublishStatus();
        _options.Log?.Invoke($"node {Id}: group {group} forced to a one-voter group at term {term} (its log ended at {lastIndex}@{lastTerm}; voters were {string.Join(",", voters.Order())})");
        return new ForcedRewrite(lastIndex, lastTerm, term, voters.Order().ToArray());
    });
}

/// <summary>One replica of a group as its node's core has it (forced recovery picks the survivor from these).</summary>
internal sealed record ReplicaState(int Node, RaftRole Role, int Leader, long Term, long LastIndex, long LastTerm, long Committed,
    int[] Voters, int[] Learners);

/// <summary>What a forced rewrite found and did: the end of the surviving log, the term of the rewrite, the voters it replaced.</summary>
internal sealed record ForcedRewrite(long LastIndex, long LastTerm, long Term, int[] FormerVoters);
