using System.Diagnostics;

namespace Replication.Engine.Cluster;

/// <summary>
/// A rolling-restart step for one node of this process (Restart-ReplicationNode): the node hands its leaderships away
/// (Suspend-ReplicationNode -Drain), stops cleanly, starts again from its folder, catches up, and is resumed. Only an
/// embedded cluster can do this in one call: a node process is restarted by whoever runs it (README, "Failover runbook").
/// </summary>
public sealed partial class EmbeddedCluster
{
    /// <summary>ErrorId: the restarted node had not applied what its shards had committed when it started, within the timeout.</summary>
    public const string CatchUpTimeout = "CatchUpTimeout";

    private static readonly TimeSpan CatchUpPoll = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// Restarts node <paramref name="id"/>: suspend and drain, clean stop, start, wait until it has applied, in every
    /// group it hosts, everything that group had committed when it came back (the replicas it holds are caught up), then
    /// resume it, unless it was suspended before (an operator's mark is kept). Everything within <paramref name="timeout"/>.
    /// A failure after the suspension leaves the node suspended (Resume-ReplicationNode clears the mark), so a runbook
    /// sees where it stopped.
    /// </summary>
    /// <exception cref="NodeNotFoundException">No such node.</exception>
    /// <exception cref="NodeNotRunningException">The node is not running (Start-ReplicationNode starts it).</exception>
    /// <exception cref="QuorumAtRiskException">A group the node votes in would be left without a running quorum (a group still
    /// forming is waited for until the timeout); nothing was done.</exception>
    /// <exception cref="RemoteOperationException">ErrorId DrainTimeout, or <see cref="CatchUpTimeout"/>.</exception>
    public async Task<ReplicationNode> RestartNodeAsync(int id, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfRemoved();
        SlotOf(id);
        long deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        if (!_nodes.TryGetValue(id, out var node) || !node.IsRunning)
            throw new NodeNotRunningException(id, $"Node {id} is not running, so there is nothing to restart; Start-ReplicationNode -Id {id} starts it.") { Target = id };
        await WaitQuorumWithoutAsync(id, deadline, timeout, cancellationToken).ConfigureAwait(false);
        bool wasSuspended = GetNode(id).Suspended;

        await SetNodeSuspendedAsync(id, suspended: true, drain: true, Remaining(deadline), cancellationToken).ConfigureAwait(false);
        await StopNodeAsync(id, kill: false, cancellationToken).ConfigureAwait(false);
        await StartNodeAsync(id, cancellationToken).ConfigureAwait(false);
        await WaitCaughtUpAsync(id, deadline, timeout, cancellationToken).ConfigureAwait(false);
        return wasSuspended ? GetNode(id) : await SetNodeSuspendedAsync(id, suspended: false, drain: false, Remaining(deadline), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Returns once every group node <paramref name="id"/> votes in (the metadata group too: it must record the resume) keeps
    /// a majority of running voters without it. A group that is still forming — fewer voters than the metadata asks for,
    /// every one of them running: a new cluster's metadata group promoting its learners, a node just added — is waited for
    /// within the timeout, because the control loop is growing it; any other shortfall is refused at once, with its reason
    /// (which voters are stopped, or a group too small to lose one).
    /// </summary>
    /// <exception cref="QuorumAtRiskException">Nothing was done.</exception>
    private async Task WaitQuorumWithoutAsync(int id, long deadline, TimeSpan timeout, CancellationToken ct)
    {
        while (true)
        {
            if (!_nodes.TryGetValue(id, out var node) || !node.IsRunning)
                throw new NodeNotRunningException(id, $"Node {id} stopped; Start-ReplicationNode -Id {id} starts it.") { Target = id };
            if (QuorumRiskWithout(id, node) is not { } risk) return;
            if (!risk.Forming) throw new QuorumAtRiskException(risk.Reason, id, risk.Group) { Target = id };
            if (Stopwatch.GetTimestamp() >= deadline)
                throw new QuorumAtRiskException(risk.Reason + $" It was still forming after {timeout.TotalSeconds:0.###} s: ask again once it has its voters, or with a longer -Timeout.", id, risk.Group) { Target = id };
            await Task.Delay(CatchUpPoll, ct).ConfigureAwait(false);
        }
    }

    /// <summary>The first group that would be left without a running quorum if node <paramref name="id"/> stopped now, and why; null when none.</summary>
    private (int Group, bool Forming, string Reason)? QuorumRiskWithout(int id, ClusterNode node)
    {
        foreach (var group in node.GroupStatuses.OrderBy(g => g.Shard))
        {
            if (!group.Voters.Contains(id)) continue;
            var others = group.Voters.Where(v => v != id).Order().ToArray();
            var stopped = others.Where(v => !(_nodes.TryGetValue(v, out var peer) && peer.IsRunning)).ToArray();
            if (others.Length - stopped.Length >= group.Voters.Count / 2 + 1) continue;
            string name = group.Shard == ClusterMetadata.MetadataGroup ? $"the metadata group (shard {group.Shard})" : $"shard {group.Shard}";
            string voters = $"voters [{string.Join(",", group.Voters.Order())}]";
            if (stopped.Length > 0)
                return (group.Shard, false, $"Restarting node {id} would leave {name} without a running quorum: of its {voters}, "
                    + $"node{(stopped.Length > 1 ? "s" : "")} {string.Join(", ", stopped)} {(stopped.Length > 1 ? "are" : "is")} stopped; start {(stopped.Length > 1 ? "them" : "it")} first.");
            // Forming: the control loop is adding the voters the metadata asks for, and once it has, the group keeps a
            // running quorum without this node.
            var desired = node.DesiredVotersOf(group.Shard);
            var desiredOthers = desired.Where(v => v != id).ToArray();
            if (desired.Count > group.Voters.Count && desiredOthers.Length >= desired.Count / 2 + 1
                && desiredOthers.All(v => _nodes.TryGetValue(v, out var peer) && peer.IsRunning))
                return (group.Shard, true, $"Restarting node {id} would leave {name} without a running quorum: it is still forming, with {voters} "
                    + $"of [{string.Join(",", desired.Order())}].");
            return (group.Shard, false, $"Restarting node {id} would leave {name} without a running quorum: it has only {voters}, "
                + "and a group of fewer than three voters cannot lose one without an outage.");
        }
        return null;
    }

    /// <summary>
    /// Waits until the restarted node has applied, in each group it hosts, the highest commit index any running node of
    /// this process reported for that group when the wait began: what was written while it was down (and during its
    /// stop) is then on it. Not "lag 0 at one instant", which a steady stream of writes may never show.
    /// </summary>
    private async Task WaitCaughtUpAsync(int id, long deadline, TimeSpan timeout, CancellationToken ct)
    {
        var targets = new Dictionary<int, long>();
        foreach (var peer in _nodes.Values.Where(n => n.IsRunning))
            foreach (var group in peer.GroupStatuses)
                if (group.Voters.Contains(id) || group.Learners.Contains(id))
                    targets[group.Shard] = Math.Max(targets.GetValueOrDefault(group.Shard), group.Committed);
        while (true)
        {
            if (_nodes.TryGetValue(id, out var node) && node.IsRunning)
            {
                var applied = node.GroupStatuses.ToDictionary(g => g.Shard, g => g.Applied);
                if (targets.All(t => applied.TryGetValue(t.Key, out long a) && a >= t.Value)) return;
            }
            if (Stopwatch.GetTimestamp() >= deadline)
                throw new RemoteOperationException(CatchUpTimeout, ReplicationErrorKind.Timeout,
                    $"Node {id} restarted but had not caught up with its shards within {timeout.TotalSeconds:0.###} s; it stays suspended. " +
                    $"Watch Get-ReplicationNode -Id {id} (LagEntries), then Resume-ReplicationNode -Id {id}.") { Target = id };
            await Task.Delay(CatchUpPoll, ct).ConfigureAwait(false);
        }
    }

    private static TimeSpan Remaining(long deadline)
    {
        long left = deadline - Stopwatch.GetTimestamp();
        return left <= 0 ? TimeSpan.FromMilliseconds(1) : TimeSpan.FromSeconds((double)left / Stopwatch.Frequency);
    }
}
