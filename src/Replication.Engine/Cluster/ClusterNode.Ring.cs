using Replication.Engine.Raft;
using Replication.Engine.Ring;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// The ring's administrative side: a node's role in the ring (leaving, zone, learner-only) and operators' pins are
/// written to the metadata by its leader (routed there from any node), and any node answers what the ring looks like
/// and which moves remain. The moves themselves are made by the control loop (ClusterNode.Placement.cs).
/// </summary>
public sealed partial class ClusterNode
{
    private static readonly TimeSpan RingChangeTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Changes a node's ring role, from any node (routed to the metadata leader).</summary>
    internal Task<NodeChangeAnswer> ChangeNodeAsync(NodeChangeArgs args, CancellationToken ct)
    {
        var timeout = TimeSpan.FromMilliseconds(Math.Clamp(args.TimeoutMs, 1, (long)RingChangeTimeout.TotalMilliseconds * 10));
        return RouteAsync(ClusterMetadata.MetadataGroup, Deadline(timeout), idempotent: true,
            local: remaining => ChangeNodeHereAsync(args, remaining, ct),
            remote: async (target, remaining) => (await CallAdminAsync<NodeChangeAnswer>(target, AdminOps.NodeChange, args with { TimeoutMs = (long)remaining.TotalMilliseconds }, remaining + NetworkMargin, ct).ConfigureAwait(false)).Answer,
            why => new QuorumUnavailableException(ClusterMetadata.MetadataGroup, timeout, $"the metadata group could not change node {args.Node}: {why}") { Target = args.Node }, ct);
    }

    private async Task<NodeChangeAnswer> ChangeNodeHereAsync(NodeChangeArgs args, TimeSpan timeout, CancellationToken ct)
    {
        var metadata = await ConfirmedMetadataAsync(timeout, ct).ConfigureAwait(false);
        var entry = metadata.Nodes.TryGetValue(args.Node, out var e) ? e : throw new NodeNotFoundException(args.Node) { Target = args.Node };
        if (args.Leaving == true && !entry.Leaving && !args.Force)
        {
            var nodes = PlacementPolicy.RingNodes(metadata, IsRunningNode);
            var check = PlacementPlanner.CheckRemoval(nodes, CurrentMemberships().Values.ToArray(), args.Node, metadata.Cluster!.ReplicationFactor);
            if (!check.CanKeepReplicationFactor && !entry.Learner)
                throw new ReplicationFactorAtRiskException(args.Node, check.Reason + " Add a node first, or use -Force to remove it anyway.") { Target = args.Node };
        }
        var changed = entry with
        {
            Leaving = args.Leaving ?? entry.Leaving,
            Zone = args.Zone is null ? entry.Zone : args.Zone.Length == 0 ? null : args.Zone,
            Learner = args.Learner ?? entry.Learner,
        };
        if (changed == entry) return new NodeChangeAnswer($"node {args.Node} unchanged");
        var ops = new List<KvOp> { PutNode(args.Node, changed, expectedVersion: null) };
        // Made learner-only: it will follow every shard, as a new replica (ReplicaIds) where it holds none now (it may have
        // held and dropped one there before); where it holds a voter, that replica stays and becomes the learner.
        if (changed.Learner && !entry.Learner)
            foreach (var range in metadata.MapOr(ShardCount).Ranges)
                if (!metadata.ReplicasOf(range.Shard).Contains(args.Node) && metadata.NewReplicaIds(range.Shard, new[] { args.Node }) is { } ids) ops.Add(ids);
        await ProposeMetadataAsync(ops, timeout, ct).ConfigureAwait(false);
        RefreshMetadata(force: true);
        string detail = $"node {args.Node}:" + (changed.Leaving != entry.Leaving ? changed.Leaving ? " leaving (its replicas move away)" : " stays" : "")
            + (changed.Zone != entry.Zone ? $" zone {changed.Zone ?? "(none)"}" : "")
            + (changed.Learner != entry.Learner ? changed.Learner ? " learner-only" : " voter" : "");
        Log($"node {NodeId}: {detail}");
        if (changed.Leaving && !entry.Leaving)
            RecordEvent(ReplicationEventType.NodeLeaving, $"Node {args.Node} is leaving{(args.Force ? " (forced)" : "")}: its replicas move to the other nodes.");
        return new NodeChangeAnswer(detail);
    }

    /// <summary>Pins a shard's voters (or drops its pin), from any node (routed to the metadata leader).</summary>
    internal Task<NodeChangeAnswer> PinShardAsync(PinArgs args, CancellationToken ct)
    {
        var timeout = TimeSpan.FromMilliseconds(Math.Clamp(args.TimeoutMs, 1, (long)RingChangeTimeout.TotalMilliseconds * 10));
        return RouteAsync(ClusterMetadata.MetadataGroup, Deadline(timeout), idempotent: true,
            local: remaining => PinShardHereAsync(args, remaining, ct),
            remote: async (target, remaining) => (await CallAdminAsync<NodeChangeAnswer>(target, AdminOps.ShardPin, args with { TimeoutMs = (long)remaining.TotalMilliseconds }, remaining + NetworkMargin, ct).ConfigureAwait(false)).Answer,
            why => new QuorumUnavailableException(ClusterMetadata.MetadataGroup, timeout, $"the metadata group could not pin shard {args.Shard}: {why}") { Target = args.Shard }, ct);
    }

    private async Task<NodeChangeAnswer> PinShardHereAsync(PinArgs args, TimeSpan timeout, CancellationToken ct)
    {
        var metadata = await ConfirmedMetadataAsync(timeout, ct).ConfigureAwait(false);
        if (!metadata.MapOr(ShardCount).Contains(args.Shard)) throw new ShardNotFoundException(args.Shard) { Target = args.Shard };
        if (args.Nodes is { } pinned)
        {
            if (pinned.Length == 0 || pinned.Distinct().Count() != pinned.Length || pinned.Length > metadata.Cluster!.ReplicationFactor)
                throw new ClusterOptionsException(ClusterOptionsException.Invalid, $"A pin of shard {args.Shard} names 1 to {metadata.Cluster!.ReplicationFactor} distinct nodes; got [{string.Join(",", pinned)}].") { Target = args.Shard };
            foreach (int id in pinned)
            {
                if (!metadata.Nodes.TryGetValue(id, out var n)) throw new NodeNotFoundException(id) { Target = id };
                if (n.Learner || n.Leaving) throw new ClusterOptionsException(ClusterOptionsException.Invalid, $"Node {id} is {(n.Learner ? "learner-only" : "leaving")}: it cannot hold a voter of shard {args.Shard}.") { Target = id };
            }
        }
        var op = args.Nodes is { } nodes
            ? new KvOp(KvOpType.Put, ClusterMetadata.PinKey(args.Shard), System.Text.Json.JsonSerializer.Serialize(nodes, ClusterMetadata.Json), null)
            : new KvOp(KvOpType.Delete, ClusterMetadata.PinKey(args.Shard), null, null);
        await ProposeMetadataAsync(new[] { op }, timeout, ct).ConfigureAwait(false);
        RefreshMetadata(force: true);
        string detail = args.Nodes is { } p ? $"shard {args.Shard} pinned to [{string.Join(",", p)}]" : $"shard {args.Shard} unpinned";
        Log($"node {NodeId}: {detail}");
        return new NodeChangeAnswer(detail);
    }

    /// <summary>On the metadata leader: the metadata as of now (a read barrier first, so a deposed leader cannot act on an old view).</summary>
    private async Task<ClusterMetadata> ConfirmedMetadataAsync(TimeSpan timeout, CancellationToken ct)
    {
        if (!_host.Status.TryGetValue(ClusterMetadata.MetadataGroup, out var st) || st.Role != RaftRole.Leader)
            throw new RetryableException($"node {NodeId} does not lead the metadata group", st?.Leader ?? 0);
        await _host.ConfirmReadAsync(ClusterMetadata.MetadataGroup, lease: false).WaitAsync(timeout, ct).ConfigureAwait(false);
        RefreshMetadata(force: true);
        if (_metadata.Cluster is null) throw new RetryableException("the cluster is not founded yet");
        return _metadata;
    }

    /// <summary>The ring as this node sees it: a row per registered node, and every move between the shards' memberships
    /// (as their leaders report them; the placement where a shard has no leader now) and the ring's placement.</summary>
    internal RingViewAnswer RingView()
    {
        var metadata = _metadata;
        if (PlacementPolicy.RingOf(metadata, PlacementPolicy.RingNodes(metadata, IsRunningNode)) is not { } ring)
            return new RingViewAnswer(Array.Empty<RingEntry>(), Array.Empty<bool>(), Array.Empty<int>(), Array.Empty<ShardMove>());
        var shards = GetShards();
        var known = CurrentMemberships();
        var current = shards.Select(s => known.TryGetValue(s.Id, out var p) ? p : new ShardPlacement(s.Id, metadata.ReplicasOf(s.Id).Distinct().ToArray())).ToArray();
        var desired = PlacementPolicy.Desired(metadata);
        var leaders = shards.Where(s => s.Leader != 0).ToDictionary(s => s.Id, s => s.Leader);
        var sizes = GetNodes().ToDictionary(n => n.Id, n => n.SizeBytes); // a node's data on disk: what it holds, in bytes
        var entries = ring.Summarize(current, leaders).Select(e => e with { Bytes = sizes.GetValueOrDefault(e.Node) }).ToArray();
        var learners = entries.Select(e => metadata.Nodes.TryGetValue(e.Node, out var n) && n.Learner).ToArray();
        var placed = entries.Select(e => desired.Count(d => d.Voters.Contains(e.Node))).ToArray();
        var moves = PlacementPlanner.Moves(ring.Nodes, current, desired).ToArray();
        return new RingViewAnswer(entries, learners, placed, moves);
    }
}
