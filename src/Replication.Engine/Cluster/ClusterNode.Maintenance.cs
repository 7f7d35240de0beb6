using Replication.Engine.Raft;

namespace Replication.Engine.Cluster;

/// <summary>
/// Maintenance (Suspend-/Resume-ReplicationNode). The mark is <see cref="NodeEntry.Suspended"/> in the replicated
/// metadata, set by the metadata leader (node.suspend, node.suspendhere), so it survives restarts and every node
/// agrees on it. Its effect is the suspended node's own doing (the maintenance loop here): its cores start no
/// campaign (they still vote and replicate), and it hands every leadership it holds to a running voter that is not
/// suspended, again whenever it finds itself leading. The leader balancer leaves suspended nodes out.
/// </summary>
public sealed partial class ClusterNode
{
    /// <summary>The pass interval while this node is suspended (it hands away every leadership it finds itself holding).</summary>
    private static readonly TimeSpan MaintenanceInterval = TimeSpan.FromMilliseconds(100);
    /// <summary>
    /// The longest wait of a node that is not suspended: its mark can only change with the metadata, whose re-reading
    /// wakes the loop at once, so this is only a safety net. A timer every 100 ms woke the thread pool (whose workers spin
    /// before they sleep) ten times a second on every idle node (bench finding), and once the status polls had stopped, this
    /// 1 s net was one of three 1 s timers left waking an idle node's thread pool (bench finding).
    /// </summary>
    private static readonly TimeSpan MaintenanceIdleInterval = TimeSpan.FromSeconds(10);
    private Task _maintenanceLoop = Task.CompletedTask;
    /// <summary>ErrorId: Suspend-ReplicationNode -Drain timed out with the node still leading a shard.</summary>
    public const string DrainTimeout = "DrainTimeout";

    private void StartMaintenanceLoop() => _maintenanceLoop = Task.Run(() => MaintenanceLoopAsync(_background.Token));

    private async Task MaintenanceLoopAsync(CancellationToken ct)
    {
        bool applied = false;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                bool suspended = RegistryEntry(NodeId)?.Suspended ?? false;
                if (suspended || applied) await _host.SetSuspendedAsync(suspended).ConfigureAwait(false);
                if (suspended != applied)
                {
                    RecordEvent(suspended ? ReplicationEventType.NodeSuspended : ReplicationEventType.NodeResumed, suspended
                        ? $"Node {NodeId} is suspended for maintenance: it hands its leaderships away and does not campaign; it still votes and replicates."
                        : $"Node {NodeId} resumed: it may campaign and lead again.");
                    applied = suspended;
                }
                if (suspended)
                {
                    await HandLeadershipsToOthersAsync().ConfigureAwait(false);
                    await Task.Delay(MaintenanceInterval, ct).ConfigureAwait(false);
                }
                else await WaitForMetadataAsync(MaintenanceIdleInterval, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { return; }
            catch (RetryableException) when (!IsRunning) { return; } // the node is stopping
        }
    }

    /// <summary>This node's view of every group it hosts, metadata group included (a published snapshot; any thread).</summary>
    internal IReadOnlyCollection<GroupStatus> GroupStatuses => _host.Status.Values.ToArray();

    /// <summary>
    /// The voters group <paramref name="group"/> should have by this node's metadata: the lowest five node ids for the
    /// metadata group, the placement (less nodes being rebuilt) for a data shard; empty when the metadata names none yet.
    /// A group with fewer voters than these, all of them running, is still forming (a new cluster, a node just added): a
    /// learner is being caught up and promoted, and the control loop adds the rest one at a time.
    /// </summary>
    internal IReadOnlyList<int> DesiredVotersOf(int group) =>
        group == ClusterMetadata.MetadataGroup ? _metadata.MetadataMembership().Voters : _metadata.DesiredVoters(group);

    /// <summary>
    /// Null when this node leads the metadata group and the group has the membership the metadata asks for (every node
    /// registered, the lowest five ids voting, the rest learning); else what it still lacks, for a message.
    /// </summary>
    internal string? MetadataGroupForming()
    {
        if (!_host.Status.TryGetValue(ClusterMetadata.MetadataGroup, out var st) || st.Role != RaftRole.Leader)
            return $"node {NodeId} does not lead the metadata group";
        var (voters, learners) = _metadata.MetadataMembership();
        if (st.Voters.Order().SequenceEqual(voters.Order()) && st.Learners.Order().SequenceEqual(learners.Order())) return null;
        return $"the metadata group has voters [{string.Join(",", st.Voters.Order())}] and learners [{string.Join(",", st.Learners.Order())}], "
            + $"not yet [{string.Join(",", voters.Order())}] and [{string.Join(",", learners.Order())}]";
    }

    /// <summary>Asks for a transfer of every leadership this node holds to the running, not suspended voter furthest along.</summary>
    private async Task HandLeadershipsToOthersAsync()
    {
        foreach (var st in _host.Status.Values.Where(s => s.Role == RaftRole.Leader && s.Voters.Count > 1))
        {
            int target = st.Voters.Where(v => v != NodeId && PeerIsRunning(v) && RegistryEntry(v) is not { Suspended: true })
                .OrderByDescending(v => st.MatchIndexes.TryGetValue(v, out long m) ? m : 0).FirstOrDefault();
            if (target != 0) await _host.TransferLeadershipAsync(st.Shard, target).ConfigureAwait(false);
        }
    }

    /// <summary>Coordinator (any node): has the metadata leader set or clear node <c>Node</c>'s mark.</summary>
    private async Task<Empty> SuspendAsync(SuspendArgs args, CancellationToken ct)
    {
        if (!_metadata.Nodes.ContainsKey(args.Node)) throw new NodeNotFoundException(args.Node) { Target = args.Node };
        var timeout = TimeSpan.FromMilliseconds(args.TimeoutMs);
        return await RouteAsync(ClusterMetadata.MetadataGroup, Deadline(timeout), idempotent: true,
            local: remaining => MarkSuspendedAsync(args.Node, args.Suspended, remaining, ct),
            remote: async (target, remaining) => (await CallAdminAsync<Empty>(target, AdminOps.NodeSuspendHere, args with { TimeoutMs = (long)remaining.TotalMilliseconds }, remaining + NetworkMargin, ct).ConfigureAwait(false)).Answer,
            why => new QuorumUnavailableException(ClusterMetadata.MetadataGroup, timeout, $"the metadata group could not mark node {args.Node}: {why}"), ct).ConfigureAwait(false);
    }

    /// <summary>On the metadata leader: sets the node's Suspended mark (idempotent).</summary>
    private async Task<Empty> MarkSuspendedAsync(int node, bool suspended, TimeSpan timeout, CancellationToken ct)
    {
        if (!_host.Status.TryGetValue(ClusterMetadata.MetadataGroup, out var st) || st.Role != RaftRole.Leader)
            throw new RetryableException($"node {NodeId} does not lead the metadata group", st?.Leader ?? 0);
        await _host.ConfirmReadAsync(ClusterMetadata.MetadataGroup, lease: false).WaitAsync(timeout, ct).ConfigureAwait(false);
        RefreshMetadata(force: true);
        var entry = _metadata.Nodes.TryGetValue(node, out var e) ? e : throw new NodeNotFoundException(node) { Target = node };
        if (entry.Suspended == suspended) return new Empty();
        await ProposeMetadataAsync(new[] { PutNode(node, entry with { Suspended = suspended }, expectedVersion: null) }, timeout, ct).ConfigureAwait(false);
        RefreshMetadata(force: true);
        Log($"node {NodeId}: node {node} {(suspended ? "suspended" : "resumed")}");
        return new Empty();
    }
}
