using Replication.Engine.Ring;

namespace Replication.Engine.Cluster;

/// <summary>
/// Decides where shard replicas go, from the replicated metadata and the shards' current memberships (pure,
/// deterministic, thread-safe). The ring (<see cref="HashRing"/>, with the cluster's <see cref="ClusterSettings"/> and
/// the operators' pins) says where every shard's voters belong; this policy turns the difference into new values of
/// the metadata's placement keys, which the shard leaders then carry out one membership change at a time
/// (<see cref="MembershipPlan"/>: add learner, catch up by log or snapshot, promote, remove the old voter — a quorum
/// never shrinks before it has grown). Rules:
/// <list type="bullet">
/// <item>A shard short of voters (fewer registered replicas than min(ReplicationFactor, nodes that hold voters): a new
/// cluster forming, a node deregistered, a split's new shard without a placement) is topped up at once, keeping the
/// replicas it has and taking the ring's nodes in ring order: restoring redundancy does not wait for a move slot.</item>
/// <item>Every other difference is a move. A shard is in motion while its group's membership differs from its placement
/// (or is unknown: no leader reports it); a new move starts only while fewer than
/// <see cref="ClusterSettings.MaxConcurrentMoves"/> shards are in motion, shards with a replica on a leaving node
/// first, then by shard id. So a crash, a leader change or a restart only delays a move: the next pass compares the
/// same states again. One exception: a shard whose placement names leaving nodes that are not voters of its group (left
/// behind by a forced recovery) moves at once, since it could never settle.</item>
/// <item>Liveness plays no part: a node that is down keeps its replicas (a restart costs no re-replication); an operator
/// who knows it is gone removes it (Remove-ReplicationNode -Force), which moves its replicas away.</item>
/// </list>
/// </summary>
public static class PlacementPolicy
{
    /// <summary>The registered nodes as the ring sees them. Leaving → Draining; being rebuilt → Down (it keeps its place);
    /// suspended → Suspended; the rest Running, or Down where <paramref name="isUp"/> says so.</summary>
    public static IReadOnlyList<RingNode> RingNodes(ClusterMetadata metadata, Func<int, bool>? isUp = null) =>
        metadata.Nodes.OrderBy(n => n.Key).Select(n => new RingNode(n.Key, string.IsNullOrEmpty(n.Value.Zone) ? null : n.Value.Zone,
            n.Value.Leaving ? RingNodeState.Draining
            : n.Value.Rebuilding ? RingNodeState.Down
            : n.Value.Suspended ? RingNodeState.Suspended
            : isUp is null || isUp(n.Key) ? RingNodeState.Running : RingNodeState.Down,
            n.Value.Learner)).ToArray();

    /// <summary>The ring of the registered nodes with the cluster's settings; null before the cluster was founded.</summary>
    public static HashRing? RingOf(ClusterMetadata metadata, IReadOnlyList<RingNode>? nodes = null) =>
        metadata.Cluster is { } info
            ? new HashRing(nodes ?? RingNodes(metadata), info.SettingsOrDefault.ForRing(info.ReplicationFactor))
            : null;

    /// <summary>Where the ring wants every shard's voters now (pins honoured), by shard id.</summary>
    public static IReadOnlyList<ShardPlacement> Desired(ClusterMetadata metadata, IReadOnlyList<RingNode>? nodes = null)
    {
        if (RingOf(metadata, nodes) is not { } ring) return Array.Empty<ShardPlacement>();
        var map = metadata.MapOr(metadata.Cluster!.ShardCount);
        var shards = map.Ranges.Select(r => r.Shard).ToHashSet();
        return ring.Place(map, metadata.Pins.Where(p => shards.Contains(p.Key)).Select(p => new ShardPin(p.Key, p.Value)));
    }

    /// <summary>
    /// The placement keys to write now (shard and its new voters, in ring order); empty when nothing should change.
    /// <paramref name="current"/>: each shard's membership as its leader reports it (a shard missing here counts as in
    /// motion).
    /// </summary>
    public static IReadOnlyList<(int Shard, int[] Replicas)> Changes(ClusterMetadata metadata, IReadOnlyDictionary<int, ShardPlacement> current)
    {
        var changes = new List<(int, int[])>();
        if (metadata.Cluster is not { } info || metadata.Nodes.Count == 0) return changes;
        var nodes = RingNodes(metadata);
        var byId = nodes.ToDictionary(n => n.Id);
        int target = Math.Min(info.ReplicationFactor, nodes.Count(n => n.HoldsVoters));
        var learners = metadata.DesiredLearners();
        int inMotion = 0;
        var moves = new List<(int Urgency, int Shard, int[] Want)>();
        foreach (var desired in Desired(metadata, nodes))
        {
            int shard = desired.Shard;
            var placed = metadata.ReplicasOf(shard);
            bool settled = current.TryGetValue(shard, out var cur) && SameSet(cur.Voters, placed) && cur.Learners.All(learners.Contains);
            if (!settled && placed.Count > 0) inMotion++;
            var want = desired.Voters.ToArray();
            if (SameSet(placed, want)) continue;
            var registered = placed.Where(metadata.Nodes.ContainsKey).ToList();
            if (registered.Count < target)
            {
                var grown = registered.Concat(want.Where(w => !registered.Contains(w))).Take(Math.Max(target, registered.Count)).ToArray();
                if (!SameSet(grown, placed)) changes.Add((shard, grown));
                continue;
            }
            bool leaving = placed.Any(id => byId.TryGetValue(id, out var n) && n.State == RingNodeState.Draining);
            // A forced recovery (ClusterNode.ForcedRecovery.cs) leaves a group with fewer voters than placed, and the lost
            // nodes can never catch up, so it would never settle. Once they are leaving (Remove-ReplicationNode -Force) and
            // hold no vote in the group, moving their replicas away cannot shrink a quorum: the move need not wait.
            bool lostVoters = cur is not null && placed.Any(id => byId.TryGetValue(id, out var n) && n.State == RingNodeState.Draining && !cur.Voters.Contains(id));
            if (!settled && !lostVoters) continue; // its last change is still being carried out
            moves.Add((leaving ? 0 : 1, shard, want));
        }
        int budget = Math.Max(0, info.SettingsOrDefault.MaxConcurrentMoves - inMotion);
        changes.AddRange(moves.OrderBy(m => m.Urgency).ThenBy(m => m.Shard).Take(budget).Select(m => (m.Shard, m.Want)));
        return changes;
    }

    /// <summary>Leaving nodes that hold nothing any more: no placement names them and no group's reported membership
    /// holds them (every shard's membership must be known). They can be deregistered.</summary>
    public static IReadOnlyList<int> Drained(ClusterMetadata metadata, IReadOnlyDictionary<int, ShardPlacement> current)
    {
        if (metadata.Cluster is null) return Array.Empty<int>();
        var shards = metadata.MapOr(metadata.Cluster.ShardCount).Ranges.Select(r => r.Shard).ToArray();
        if (!shards.All(current.ContainsKey)) return Array.Empty<int>();
        return metadata.Nodes.Where(n => n.Value.Leaving).Select(n => n.Key)
            .Where(id => shards.All(s => !metadata.ReplicasOf(s).Contains(id) && !current[s].Holds(id)))
            .Order().ToArray();
    }

    private static bool SameSet(IReadOnlyCollection<int> a, IReadOnlyCollection<int> b) => a.Count == b.Count && a.All(b.Contains);
}
