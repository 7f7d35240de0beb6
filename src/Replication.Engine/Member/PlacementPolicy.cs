namespace Replication.Engine.Member;

/// <summary>
/// Decides where shard replicas go, one step at a time, from the metadata alone (pure, deterministic,
/// thread-safe). Today it only grows: a shard with fewer replicas than
/// min(ReplicationFactor, node count) gets the registered node that holds the fewest replicas (lowest
/// id on a tie), so a joining node takes over its share and existing replicas never move. Moving
/// replicas to restore a consistent-hash ring's placement (rebalancing) and replacing removed nodes
/// plug in here later: the executors (MembershipPlan on every shard leader) already add, promote
/// and remove whatever the placement says.
/// </summary>
public static class PlacementPolicy
{
    /// <summary>The next placement change (shard and its new replica list), or null when every shard is at its target.</summary>
    public static (int Shard, int[] Replicas)? Next(ClusterMetadata metadata)
    {
        if (metadata.Cluster is not { } info || metadata.Nodes.Count == 0) return null;
        int target = Math.Min(info.ReplicationFactor, metadata.Nodes.Count);
        var load = metadata.Nodes.Keys.ToDictionary(id => id, _ => 0);
        foreach (var replicas in metadata.Placement.Values)
            foreach (int id in replicas)
                if (load.ContainsKey(id)) load[id]++;
        for (int shard = 0; shard < info.ShardCount; shard++)
        {
            var replicas = metadata.ReplicasOf(shard);
            if (replicas.Count >= target) continue;
            int candidate = load.Keys.Where(id => !replicas.Contains(id))
                .OrderBy(id => load[id]).ThenBy(id => id).FirstOrDefault();
            if (candidate == 0) continue;
            return (shard, replicas.Append(candidate).ToArray());
        }
        return null;
    }
}
