namespace Replication.Engine.Cluster;

/// <summary>
/// Decides where shard replicas go, from the metadata alone (pure, deterministic, thread-safe). Today it only
/// grows: a shard with fewer replicas than min(ReplicationFactor, node count) gets the registered nodes that
/// hold the fewest replicas (lowest id on a tie), so a joining node takes over its share and existing replicas
/// never move. The executors (MembershipPlan on every shard leader) add, promote and remove whatever the
/// placement says.
/// </summary>
public static class PlacementPolicy
{
    /// <summary>Every placement change needed now (shard and its new replica list), computed together; empty when every shard is at its target.</summary>
    public static IReadOnlyList<(int Shard, int[] Replicas)> Changes(ClusterMetadata metadata)
    {
        var changes = new List<(int, int[])>();
        if (metadata.Cluster is not { } info || metadata.Nodes.Count == 0) return changes;
        int target = Math.Min(info.ReplicationFactor, metadata.Nodes.Count);
        var load = metadata.Nodes.Keys.ToDictionary(id => id, _ => 0);
        foreach (var replicas in metadata.Placement.Values)
            foreach (int id in replicas)
                if (load.ContainsKey(id)) load[id]++;
        foreach (int shard in metadata.MapOr(info.ShardCount).Ranges.Select(r => r.Shard))
        {
            var replicas = metadata.ReplicasOf(shard).ToList();
            if (replicas.Count >= target) continue;
            while (replicas.Count < target)
            {
                int candidate = load.Keys.Where(id => !replicas.Contains(id)).OrderBy(id => load[id]).ThenBy(id => id).FirstOrDefault();
                if (candidate == 0) break;
                replicas.Add(candidate);
                load[candidate]++;
            }
            changes.Add((shard, replicas.ToArray()));
        }
        return changes;
    }
}
