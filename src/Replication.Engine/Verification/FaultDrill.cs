using System.Diagnostics;
using System.Globalization;
using Replication.Engine.Cluster;

namespace Replication.Engine.Verification;

/// <summary>
/// The fault drill (Invoke-ReplicationFaultDrill): a Jepsen-style test an operator runs on their own machine before
/// trusting it. Concurrent clients run a mixed workload (puts, compare-and-sets, deletes, linearizable reads;
/// <see cref="DrillWorkload"/>) against a cluster the drill controls, while faults from a seeded plan
/// (<see cref="FaultSchedule"/>) kill, pause, cut off and slow its nodes one at a time. Every operation is recorded
/// with its call and return times and outcome (unknown for writes that timed out or lost their connection). At the
/// end every fault is healed, every key is read back linearizably, and the history is checked for linearizability
/// (<see cref="LinearizabilityChecker"/>, per key, with a budget: an undecided key is reported, never passed) and
/// for acknowledged writes that vanished. One <see cref="ReplicationDrillReport"/> comes back.
/// <para>
/// Targets: an embedded cluster of this process (<see cref="RunAsync"/>: the caller's, whose keys the drill writes under
/// its own prefix and deletes afterwards), a temporary embedded cluster (<see cref="RunOnNewClusterAsync"/>), or node
/// processes the drill starts and stops itself (<see cref="RunOnNodeProcessesAsync"/>).
/// </para>
/// <para>
/// Bounded: the workload stops at the duration (or <see cref="FaultDrillOptions.MaxOperations"/>); healing, leader
/// waits and the read-back have fixed bounds; the check has a step budget. Deterministic where it can be: the fault plan
/// and the clients' choices come from the seed; the real timing of operations, elections and faults is the machine's.
/// Thread-safe (each run is independent).
/// </para>
/// </summary>
public static class FaultDrill
{
    private static readonly TimeSpan LeaderBound = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan ReadBackBound = TimeSpan.FromSeconds(60);

    /// <summary>Drills <paramref name="cluster"/>, an embedded cluster of this process (at least 3 nodes; every fault supported).</summary>
    /// <exception cref="InvalidDrillOptionsException">Bad options, or fewer than 3 nodes.</exception>
    public static async Task<ReplicationDrillReport> RunAsync(EmbeddedCluster cluster, FaultDrillOptions options, IProgress<BackupProgress>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        ArgumentNullException.ThrowIfNull(options);
        if (cluster.NodeIds.Count < 3) throw new InvalidDrillOptionsException($"Cluster '{cluster.Name}' has {cluster.NodeIds.Count} node(s); a drill needs at least 3, so that one can fail while the others keep a quorum.");
        await using var target = new EmbeddedDrillTarget(cluster, "Embedded", dispose: null);
        return await RunAsync(target, options, deleteKeys: true, progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Creates a temporary embedded cluster (<see cref="FaultDrillOptions.NodeCount"/> nodes, <see cref="FaultDrillOptions.ShardCount"/>
    /// shards) in <paramref name="path"/> (a new folder under the temp folder when null), drills it, and removes it with its folder.
    /// </summary>
    public static async Task<ReplicationDrillReport> RunOnNewClusterAsync(FaultDrillOptions options, string? path, IProgress<BackupProgress>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate(DrillFault.All, "An embedded cluster");
        path ??= Path.Combine(Path.GetTempPath(), "replication-drill-" + Guid.NewGuid().ToString("N")[..10]);
        progress?.Report(new BackupProgress(Activity, $"creating a temporary {options.NodeCount}-node cluster in {path}", 0, 1));
        bool created = !Directory.Exists(path);
        EmbeddedCluster cluster;
        try
        {
            cluster = await EmbeddedCluster.StartAsync(new ClusterOptions
            {
                Name = "drill-" + Path.GetFileName(path),
                Path = path,
                NodeCount = options.NodeCount,
                ShardCount = options.ShardCount,
                Log = options.Log,
            }, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            if (created && Directory.Exists(path)) Directory.Delete(path, recursive: true);
            throw;
        }
        await using var target = new EmbeddedDrillTarget(cluster, "Embedded (temporary)", () => new ValueTask(cluster.RemoveAsync(deleteData: true)));
        return await RunAsync(target, options, deleteKeys: false, progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Starts <see cref="FaultDrillOptions.NodeCount"/> node processes with <paramref name="launcher"/> (see
    /// <see cref="NodeProcessStart"/>) in folders under <paramref name="path"/> (a new folder under the temp folder when null),
    /// drills them with SIGKILL, SIGSTOP/SIGCONT, partitions at their transports and slow disks (ProcessDrillTarget), then
    /// kills them and deletes the folders.
    /// </summary>
    /// <exception cref="InvalidDrillOptionsException">Bad options, or not Linux/macOS.</exception>
    public static async Task<ReplicationDrillReport> RunOnNodeProcessesAsync(FaultDrillOptions options, Func<NodeProcessStart, ProcessStartInfo> launcher,
        string? path, IProgress<BackupProgress>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(launcher);
        options.Validate(DrillFault.All, "Node processes");
        path ??= Path.Combine(Path.GetTempPath(), "replication-drill-" + Guid.NewGuid().ToString("N")[..10]);
        progress?.Report(new BackupProgress(Activity, $"starting {options.NodeCount} node processes in {path}", 0, 1));
        await using var target = await ProcessDrillTarget.StartAsync(launcher, path, options.NodeCount, options.Log, cancellationToken).ConfigureAwait(false);
        return await RunAsync(target, options, deleteKeys: false, progress, cancellationToken).ConfigureAwait(false);
    }

    private const string Activity = "Invoke-ReplicationFaultDrill";

    private static async Task<ReplicationDrillReport> RunAsync(IDrillTarget target, FaultDrillOptions options, bool deleteKeys, IProgress<BackupProgress>? progress, CancellationToken ct)
    {
        options.Validate(target.Supported, target.Description == "NodeProcesses" ? "Node processes" : "An embedded cluster");
        var watch = Stopwatch.StartNew();
        int seed = options.Seed ?? Random.Shared.Next(1, int.MaxValue);
        var faults = options.Faults ?? target.Supported;
        var log = options.Log;
        var nodes = target.NodeIds;
        var plan = FaultSchedule.Plan(seed, options.Duration, faults, nodes, target.ShardCount);
        string prefix = $"drill-{seed}-{DateTime.UtcNow:yyyyMMddHHmmss}/";
        log?.Invoke($"drill: seed {seed}, {options.Duration.TotalSeconds:0} s, {options.Clients} clients, faults {faults}, {plan.Count} planned, on {target.Description} '{target.ClusterName}' ({nodes.Count} nodes, {target.ShardCount} shards)");

        await target.WaitForLeadersAsync(LeaderBound, ct).ConfigureAwait(false);
        var workload = new DrillWorkload(options, seed, prefix, target.ShardCount);
        var events = new List<DrillFaultEvent>();
        IReadOnlyList<string> unread;
        try
        {
            if (options.MutantLocalReads) await target.SetMutantAsync(true, ct).ConfigureAwait(false);
            long stopAt = workload.Now() + workload.Ticks(options.Duration);
            using var stopClients = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var clients = workload.RunAsync(target.Endpoints, target.Security, stopAt, stopClients.Token);
            try
            {
                foreach (var p in plan)
                {
                    // A slow machine (a restarted node process that took long to answer) can fall behind the plan: a
                    // fault that would now outlast the workload is not injected, so faults never run without clients.
                    if (Math.Max(workload.Now(), workload.Ticks(p.At)) + workload.Ticks(p.Hold) > stopAt)
                    {
                        log?.Invoke($"drill: {plan.Count - events.Count} planned fault(s) not injected: the drill ran behind its plan");
                        break;
                    }
                    await DelayUntilAsync(workload, workload.Ticks(p.At), ct).ConfigureAwait(false);
                    progress?.Report(new BackupProgress(Activity, $"{events.Count} faults injected; {p.Kind} next", (int)workload.Elapsed(workload.Now()).TotalSeconds, (int)options.Duration.TotalSeconds));
                    events.Add(await InjectAndHealAsync(target, workload, p, log, ct).ConfigureAwait(false));
                }
                await DelayUntilAsync(workload, stopAt, ct).ConfigureAwait(false);
                // Clients stop by themselves at stopAt; one blocked on a frozen node answers within its timeout. Past this
                // bound the rest are cancelled (their writes in flight are recorded as of unknown outcome).
                try { await clients.WaitAsync(options.OperationTimeout * 3 + TimeSpan.FromSeconds(10), ct).ConfigureAwait(false); }
                catch (TimeoutException) { log?.Invoke("drill: clients still busy at the end; cancelling them"); }
            }
            finally
            {
                stopClients.Cancel();
                try { await clients.ConfigureAwait(false); }
                catch (OperationCanceledException) { }
            }
        }
        finally
        {
            await target.HealAllAsync().ConfigureAwait(false);
        }

        progress?.Report(new BackupProgress(Activity, "reading every key back", (int)options.Duration.TotalSeconds, (int)options.Duration.TotalSeconds));
        await target.WaitForLeadersAsync(LeaderBound, ct).ConfigureAwait(false);
        unread = await workload.ReadBackAsync(target.Endpoints, target.Security, ReadBackBound, ct).ConfigureAwait(false);
        if (deleteKeys) await DeleteKeysAsync(target, prefix, ct).ConfigureAwait(false);

        progress?.Report(new BackupProgress(Activity, "checking the history", (int)options.Duration.TotalSeconds, (int)options.Duration.TotalSeconds));
        var history = workload.History.ToArray();
        var check = LinearizabilityChecker.CheckAll(history, options.CheckStepsPerKey, options.CheckSteps);
        var (lost, firstLost) = workload.LostWrites();
        var recorded = history.Where(o => o.Client != -1).ToArray();
        long faultFrom = workload.Ticks(FaultSchedule.WarmUp(options.Duration)), faultTo = workload.Ticks(options.Duration - FaultSchedule.CoolDown(options.Duration));
        var report = new ReplicationDrillReport
        {
            Cluster = target.ClusterName,
            Target = target.Description,
            Seed = seed,
            Duration = options.Duration,
            Elapsed = watch.Elapsed,
            Nodes = nodes.Count,
            Clients = options.Clients,
            Operations = recorded.Length,
            Succeeded = recorded.LongCount(o => o.Status == OpStatus.Ok),
            Failed = recorded.LongCount(o => o.Status == OpStatus.Failed),
            Unknown = recorded.LongCount(o => o.Status == OpStatus.Unknown),
            Writes = recorded.LongCount(o => o.Input.Kind != KvOpKind.Get),
            Reads = recorded.LongCount(o => o.Input.Kind == KvOpKind.Get),
            Faults = events.GroupBy(e => e.Kind.ToString()).ToDictionary(g => g.Key, g => g.Count()),
            FaultLog = events,
            LongestUnavailability = workload.LongestUnavailability(faultFrom, faultTo),
            AcknowledgedWritesLost = lost,
            Violations = check.ViolatedKeys.Count,
            Undecided = check.UndecidedKeys.Union(unread).Count(),
            KeysChecked = check.KeysChecked,
            Detail = check.Outcome == CheckOutcome.NotLinearizable ? check.Detail
                : firstLost ?? (unread.Count > 0 ? $"{unread.Count} key(s) could not be read back within {ReadBackBound.TotalSeconds:0} s, first '{unread[0]}'"
                : check.Outcome == CheckOutcome.Undecided ? check.Detail : null),
            Replay = Replay(target, options, seed, faults),
        };
        log?.Invoke($"drill: {report.Operations} operations ({report.Succeeded} ok, {report.Failed} failed, {report.Unknown} unknown), {events.Count} faults, " +
            $"longest unavailability {report.LongestUnavailability.TotalMilliseconds:0} ms, lost {lost}, violations {report.Violations}, undecided {report.Undecided}, checked in {check.Steps} steps");
        return report;
    }

    /// <summary>Injects one planned fault, holds it, heals it, and records what happened.</summary>
    private static async Task<DrillFaultEvent> InjectAndHealAsync(IDrillTarget target, DrillWorkload workload, FaultSchedule.Planned p, Action<string>? log, CancellationToken ct)
    {
        int node = p.Node;
        string why = "picked by the seed";
        if (p.LeaderOfShard is int shard)
        {
            int leader = await target.LeaderOfAsync(shard, ct).ConfigureAwait(false);
            if (leader != 0)
            {
                node = leader;
                why = $"leader of shard {shard}";
            }
            else why = $"shard {shard} had no known leader; picked by the seed";
        }
        string detail = p.Kind == DrillFault.SlowDisk ? $"{why}; {p.SlowDelay.TotalMilliseconds:0} ms per log write" : why;
        var at = workload.Elapsed(workload.Now());
        log?.Invoke($"drill: {at.TotalSeconds:0.0}s inject {p.Kind} on node {node} ({detail}) for {p.Hold.TotalMilliseconds:0} ms");
        var started = Stopwatch.StartNew();
        try
        {
            await target.InjectAsync(p.Kind, node, p.SlowDelay, ct).ConfigureAwait(false);
            await Task.Delay(p.Hold, ct).ConfigureAwait(false);
        }
        finally
        {
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(90));
            await target.HealAsync(p.Kind, node, bound.Token).ConfigureAwait(false);
        }
        log?.Invoke($"drill: healed {p.Kind} on node {node} after {started.ElapsedMilliseconds} ms");
        return new DrillFaultEvent(p.Kind, node, at, started.Elapsed, detail);
    }

    private static async Task DelayUntilAsync(DrillWorkload workload, long ticks, CancellationToken ct)
    {
        var wait = workload.Elapsed(ticks - workload.Now());
        if (wait > TimeSpan.Zero) await Task.Delay(wait, ct).ConfigureAwait(false);
    }

    /// <summary>Removes the drill's keys from the caller's cluster (best effort, bounded: they are its own, under its prefix).</summary>
    private static async Task DeleteKeysAsync(IDrillTarget target, string prefix, CancellationToken ct)
    {
        try
        {
            await using var client = await Client.ClusterClient.ConnectAsync(target.Endpoints, target.Security, cancellationToken: ct).ConfigureAwait(false);
            var keys = new List<KeyWrite>();
            await foreach (var k in client.ScanAsync(prefix, ReadConsistency.Linearizable, TimeSpan.FromSeconds(30), ct).ConfigureAwait(false))
                keys.Add(new KeyWrite(k.Key, null));
            if (keys.Count > 0) await client.WriteAsync(keys, WriteConcern.Majority, TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);
        }
        catch (ReplicationException)
        {
            // The drill's verdict does not depend on it; the keys stay under their prefix.
        }
    }

    private static string Replay(IDrillTarget target, FaultDrillOptions o, int seed, DrillFault faults)
    {
        var parts = new List<string> { "Invoke-ReplicationFaultDrill", "-Seed", seed.ToString(CultureInfo.InvariantCulture),
            "-Duration", o.Duration.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture), "-Fault", string.Join(',', Enum.GetValues<DrillFault>().Where(k => k is not DrillFault.None and not DrillFault.All && (faults & k) != 0)),
            "-Clients", o.Clients.ToString(CultureInfo.InvariantCulture) };
        if (target.Description == "NodeProcesses") parts.Add("-NodeProcess");
        else if (target.Description == "Embedded") parts.AddRange(new[] { "-Cluster", target.ClusterName });
        return string.Join(' ', parts) + "   # the same fault schedule; operation timing is the machine's";
    }
}
