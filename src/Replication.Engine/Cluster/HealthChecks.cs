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
    /// <summary>A node whose wall clock is further than this from the caller's is a Warning. Raft itself runs on each
    /// node's own tick count and does not need synchronized clocks; event times, LagSeconds, backups' times and TLS
    /// certificates' validity do. The measurement's own error is the status round trip (milliseconds on a LAN).</summary>
    public static readonly TimeSpan ClockOffsetWarning = TimeSpan.FromSeconds(1);
    /// <summary>Free bytes on a node's data volume below which the Disk check warns (or below its data size, whichever is
    /// more: a snapshot sent to a replica or a backup copies about that much).</summary>
    public const long DiskWarningFreeBytes = 1L << 30;
    /// <summary>Free bytes below which the Disk check fails: SQLite's next checkpoint or compaction may not fit.</summary>
    public const long DiskFailFreeBytes = 128L << 20;

    /// <summary>Runs every check; with <paramref name="storage"/> also the Storage check (SQLite's quick_check of every running
    /// node's stores, which reads every page: only on request).</summary>
    public static Task<IReadOnlyList<ReplicationHealthCheck>> RunAsync(IReplicationCluster cluster, TimeSpan timeout, CancellationToken ct, bool storage = false) =>
        RunAsync(cluster, timeout, ct, DiskWarningFreeBytes, DiskFailFreeBytes, storage);

    /// <summary>As <see cref="RunAsync(IReplicationCluster, TimeSpan, CancellationToken, bool)"/>, with the Disk thresholds given (tests use
    /// thresholds above the machine's free space to see the check warn and fail).</summary>
    internal static async Task<IReadOnlyList<ReplicationHealthCheck>> RunAsync(IReplicationCluster cluster, TimeSpan timeout, CancellationToken ct,
        long diskWarningFreeBytes, long diskFailFreeBytes, bool storage = false)
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

        // One layout for every node: a replica moved from a node of a file per shard to one of one state.db (or back) is
        // copied row by row, at a fraction of the speed of a file's copy (README, "The ring"). Mixed layouts work; a node
        // process started without -StoreLayout FilePerShard that joins a cluster of that layout is the usual way to get them.
        var layouts = nodes.Where(n => n.State == NodeState.Running && n.StoreLayout is not null).OrderBy(n => n.Id).ToArray();
        if (layouts.Length > 0)
        {
            bool one = layouts.Select(n => n.StoreLayout).Distinct().Count() == 1;
            Add("StoreLayout", "cluster", one ? HealthResult.Pass : HealthResult.Warning,
                one ? $"Every running node keeps its state as {layouts[0].StoreLayout}."
                : "Nodes keep their state in different layouts (" + string.Join(", ", layouts.Select(n => $"{n.Id}:{n.StoreLayout}"))
                  + "): a replica moved between two layouts is copied row by row, not as a file.");
        }

        foreach (var n in nodes.Where(n => n.State == NodeState.Running).OrderBy(n => n.Id))
        {
            Add("ReplicaLag", $"node {n.Id}", n.LagEntries <= LagWarningEntries ? HealthResult.Pass : HealthResult.Warning,
                (n.LagEntries is { } lag
                    ? FormattableString.Invariant($"{lag} entries and {n.LagSeconds:0.0} s behind its shards' leaders")
                    : FormattableString.Invariant($"Lag not known: for some shard it does not lead, it has no fresh report from a peer hosting it (just started, or cut off); {n.LagSeconds:0.0} s since it was last seen caught up"))
                + (n.Role == NodeRole.Learner ? " (a learner: asynchronous, it counts toward no quorum)" : "")
                + $" (warning above {LagWarningEntries} entries).");
            long warnBelow = Math.Max(diskWarningFreeBytes, n.SizeBytes);
            var disk = n.DiskFull || n.DiskFreeBytes < diskFailFreeBytes ? HealthResult.Fail
                : n.DiskFreeBytes is null || n.DiskFreeBytes < warnBelow ? HealthResult.Warning : HealthResult.Pass;
            Add("Disk", $"node {n.Id}", disk,
                (n.DiskFull ? $"Disk full, refusing writes: {n.StateReason}. " : "")
                + (n.DiskFreeBytes is long free ? $"{Mib(free)} free" : "Free space unknown")
                + $", data {Mib(n.SizeBytes)} in {n.DataPath} (warning below {Mib(warnBelow)} free, failure below {Mib(diskFailFreeBytes)}).");
        }

        var callerNow = DateTimeOffset.UtcNow;
        foreach (var n in nodes.Where(n => n.State == NodeState.Running).OrderBy(n => n.Id))
        {
            if (n.Clock is not { } clock)
            {
                Add("ClockOffset", $"node {n.Id}", HealthResult.Warning, "The node reported no clock.");
                continue;
            }
            var offset = clock - callerNow;
            Add("ClockOffset", $"node {n.Id}", offset.Duration() <= ClockOffsetWarning ? HealthResult.Pass : HealthResult.Warning,
                $"Clock {offset.TotalMilliseconds:+0;-0;0} ms from this machine's (warning beyond ±{ClockOffsetWarning.TotalMilliseconds:0} ms; measured through the status round trip).");
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

        if (storage)
        {
            foreach (var (node, stores, reason) in await cluster.CheckStorageAsync(timeout, ct).ConfigureAwait(false))
            {
                if (stores is null)
                {
                    Add("Storage", $"node {node}", HealthResult.Warning, reason + ".");
                    continue;
                }
                var failed = stores.Where(st => st.Problem is not null).ToArray();
                string checkedStores = string.Join(", ", stores.Select(st => FormattableString.Invariant($"{st.Store} ({Mib(st.SizeBytes)}, {st.Seconds:0.00} s)")));
                Add("Storage", $"node {node}", failed.Length == 0 ? HealthResult.Pass : HealthResult.Fail,
                    failed.Length == 0 ? $"SQLite's quick_check passed: {checkedStores}."
                    : string.Join(" ", failed.Select(st => st.Problem)) + $" Checked: {checkedStores}. Restore-ReplicationNode -Id {node} rebuilds it from its peers.");
            }
        }
        return checks;
    }

    private static string Mib(long bytes) => FormattableString.Invariant($"{bytes / 1048576.0:0.0} MiB");
}
