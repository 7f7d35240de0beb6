namespace Replication.PowerShell;

/// <summary>
/// The clusters known to this process: created with New-ReplicationCluster (later also connected).
/// Process-wide on purpose: runspaces of one process (Start-ThreadJob, ForEach-Object -Parallel)
/// share the clusters that run inside it. Thread-safe: every member takes one lock.
/// Names are unique, case-insensitive. The "current" cluster, used when a cmdlet gets no -Cluster,
/// is the most recently registered one still registered.
/// </summary>
internal static class ClusterRegistry
{
    private static readonly object Gate = new();
    private static readonly List<ReplicationCluster> Clusters = new();
    private static readonly HashSet<string> Reserved = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Claims a name before the (slow) start of a cluster, so two concurrent
    /// New-ReplicationCluster calls cannot both take it. False when the name is in use.</summary>
    public static bool TryReserve(string name)
    {
        lock (Gate)
        {
            if (Reserved.Contains(name) || Clusters.Any(c => string.Equals(c.Name, name, StringComparison.OrdinalIgnoreCase))) return false;
            Reserved.Add(name);
            return true;
        }
    }

    public static void ReleaseReservation(string name)
    {
        lock (Gate) Reserved.Remove(name);
    }

    /// <summary>Registers a started cluster under its reserved name and makes it current.</summary>
    public static void Register(ReplicationCluster cluster)
    {
        lock (Gate)
        {
            Reserved.Remove(cluster.Name);
            Clusters.Add(cluster);
        }
    }

    public static void Unregister(ReplicationCluster cluster)
    {
        lock (Gate) Clusters.Remove(cluster);
    }

    public static ReplicationCluster? Find(string name)
    {
        lock (Gate) return Clusters.LastOrDefault(c => string.Equals(c.Name, name, StringComparison.OrdinalIgnoreCase));
    }

    public static ReplicationCluster? Current
    {
        get { lock (Gate) return Clusters.Count == 0 ? null : Clusters[^1]; }
    }

    /// <summary>A copy, in registration order.</summary>
    public static ReplicationCluster[] All
    {
        get { lock (Gate) return Clusters.ToArray(); }
    }
}
