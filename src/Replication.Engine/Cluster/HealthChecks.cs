namespace Replication.Engine.Cluster;

/// <summary>
/// The checks of Test-ReplicationCluster, computed from what any <see cref="IReplicationCluster"/> reports (nodes,
/// shards, the event history), so they are the same for an embedded cluster and for node processes. Each check
/// names its thresholds here; a runbook gates on <see cref="HealthResult.Fail"/>.
/// </summary>
public static class HealthChecks
{
    /// <summary>A replica further behind its shard's leader than this many entries is a Warning (any lag at all is normal for a moment).</summary>
    public const long LagWarningEntries = 1_000;
    /// <summary>More leader elections of one shard than this within <see cref="ChurnWindow"/> is a Warning.</summary>
    public const int ChurnWarningElections = 3;
    public static readonly TimeSpan ChurnWindow = TimeSpan.FromMinutes(10);

    public static async Task<IReadOnlyList<ReplicationHealthCheck>> RunAsync(IReplicationCluster cluster, TimeSpan timeout, CancellationToken ct)
    {
        var nodes = cluster.GetNodes();
        var shards = cluster.GetShards();
        var checks = new List<ReplicationHealthCheck>();
        ReplicationHealthCheck Add(string check, string target, HealthResult result, string detail)
        {
            var c = new ReplicationHealthCheck { Cluster = cluster.Name, Check = check, Target = target, Result = result, Detail = detail };
            checks.Add(c);
            return c;
        }
        var running = nodes.Where(n => n.State == NodeState.Running).Select(n => n.Id).ToHashSet();

        foreach (var n in nodes.OrderBy(n => n.Id))
            Add("NodeReachable", $"node {n.Id}", n.State == NodeState.Running ? HealthResult.Pass : HealthResult.Fail,
                n.State == NodeState.Running ? $"Running at {n.Endpoint}." : $"{n.State}: {n.StateReason}");

        foreach (var s in shards.OrderBy(s => s.Id))
        {
            int up = s.Voters.Count(running.Contains), quorum = s.Voters.Count / 2 + 1;
            var down = s.Voters.Where(v => !running.Contains(v)).ToArray();
            Add("Quorum", $"shard {s.Id}", up >= quorum ? (down.Length == 0 ? HealthResult.Pass : HealthResult.Warning) : HealthResult.Fail,
                $"{up} of {s.Voters.Count} voters running (quorum {quorum})" + (down.Length > 0 ? $"; down: {string.Join(",", down)}." : "."));
            // No leader while a quorum runs is an election or a transfer in progress (a Warning: it passes by itself within
            // an election timeout or so); without a quorum it cannot pass by itself.
            Add("Leader", $"shard {s.Id}", s.Leader != 0 ? HealthResult.Pass : up >= quorum ? HealthResult.Warning : HealthResult.Fail,
                s.Leader != 0 ? $"Node {s.Leader} leads in term {s.Term}."
                : up >= quorum ? $"No leader known (term {s.Term}): an election or a transfer is in progress." : $"No leader known (term {s.Term}) and no quorum running.");
        }

        var candidates = nodes.Where(n => n.State == NodeState.Running && !n.Suspended && n.ShardsHosted > 0).ToArray();
        if (candidates.Length > 0)
        {
            int most = candidates.Max(n => n.ShardsLed), least = candidates.Min(n => n.ShardsLed);
            Add("LeaderBalance", "cluster", most - least <= 1 ? HealthResult.Pass : HealthResult.Warning,
                "Shards led per running node: " + string.Join(", ", candidates.OrderBy(n => n.Id).Select(n => $"{n.Id}:{n.ShardsLed}")) + ".");
        }

        foreach (var n in nodes.Where(n => n.State == NodeState.Running).OrderBy(n => n.Id))
        {
            Add("ReplicaLag", $"node {n.Id}", n.LagEntries <= LagWarningEntries ? HealthResult.Pass : HealthResult.Warning,
                $"{n.LagEntries} entries behind its shards' leaders (warning above {LagWarningEntries}).");
            Add("Disk", $"node {n.Id}", n.DiskFull ? HealthResult.Fail : HealthResult.Pass,
                (n.DiskFull ? $"Disk full, refusing writes: {n.StateReason}. " : "") + $"Data {n.SizeBytes / 1048576.0:0.0} MiB in {n.DataPath}.");
        }

        var since = DateTimeOffset.UtcNow - ChurnWindow;
        var history = await cluster.GetEventsAsync(since, new[] { ReplicationEventType.LeaderElected }, Array.Empty<int>(), Array.Empty<int>(), null, timeout, ct).ConfigureAwait(false);
        foreach (var s in shards.OrderBy(s => s.Id))
        {
            int elections = history.Events.Count(e => e.Shard == s.Id);
            Add("LeaderChurn", $"shard {s.Id}", elections <= ChurnWarningElections ? HealthResult.Pass : HealthResult.Warning,
                $"{elections} leader election(s) in the last {ChurnWindow.TotalMinutes:0} minutes (warning above {ChurnWarningElections})"
                + (history.Unread.Count > 0 ? $"; history of node(s) {string.Join(",", history.Unread.Select(u => u.Node))} not read." : "."));
        }
        return checks;
    }
}
