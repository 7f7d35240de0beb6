using System.Diagnostics;
using Replication.Engine.Cluster;

/// <summary>
/// Issue 10 item 8, opt-in (`--only timing`, minutes long, not in CI): for each election timeout asked for, three
/// node processes on 127.0.0.1 run idle for a phase and under write load for a phase while one busy-loop process per
/// core keeps the cores busy; leader changes are counted from the nodes' event histories (LeaderElected events not
/// caused by a leader transfer); then, still under the busy loops, the process leading the most shards is killed
/// <c>kills</c> times (FailoverScenario's kill: time to the new leader's election and to the first acknowledged
/// write) and started again. Measures; never asserts.
/// </summary>
internal static class TimingScenario
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(90);

    public static async Task<TimingResult> RunAsync(string folder, string secret, int[] electionTimeoutsMs, double phaseMinutes, int kills, Action<string>? echo)
    {
        var result = new TimingResult
        {
            Machine = global::Machine.Describe(folder),
            Started = DateTimeOffset.Now.ToString("yyyy-MM-dd HH:mm zzz"),
            PhaseMinutes = phaseMinutes,
            Spinners = Environment.ProcessorCount,
        };
        foreach (int ms in electionTimeoutsMs)
        {
            Console.WriteLine();
            Console.WriteLine($"== timing: election timeout {ms} ms, {phaseMinutes:0.#} min idle + {phaseMinutes:0.#} min loaded under {result.Spinners} busy loops, then {kills} kills ==");
            var setting = new TimingResult.Setting { ElectionTimeoutMs = ms, HeartbeatMs = RaftTiming.DefaultHeartbeatIntervalMilliseconds, Kills = new FailoverResult { ElectionTimeoutMs = ms } };
            result.Settings.Add(setting);
            await using var cluster = await NodeCluster.StartAsync(Path.Combine(folder, $"timing-{ms}"), secret, RaftTiming.ToTicks(ms), echo);
            var spinners = new List<ChildProcess>();
            try
            {
                for (int i = 0; i < result.Spinners; i++)
                    spinners.Add(await ChildProcess.StartAsync($"spin{i + 1}", "/bin/sh", ["-c", "while :; do :; done"]));
                var status = await cluster.WaitHealthyAsync(Bound);
                await Task.Delay(2000); // the balancer's first moves after forming are not what is measured
                setting.Phases.Add(await PhaseAsync(cluster, "idle", phaseMinutes, []));
                var keys = NodeCluster.KeysByShard(status, 500, ms).Values.SelectMany(k => k).ToArray();
                setting.Phases.Add(await PhaseAsync(cluster, "loaded", phaseMinutes, keys));
                for (int k = 0; k < kills; k++)
                    await FailoverScenario.KillAsync(cluster, NodeCluster.KeysByShard(await cluster.WaitHealthyAsync(Bound), 100, k), setting.Kills);
            }
            finally
            {
                foreach (var s in spinners) s.Dispose();
            }
            Console.WriteLine(result.Text());
        }
        return result;
    }

    private static async Task<TimingResult.Phase> PhaseAsync(NodeCluster cluster, string name, double minutes, string[] keys)
    {
        var phase = new TimingResult.Phase { Name = name, Minutes = minutes, LoadAverageStart = Machine.LoadAverage() };
        var since = DateTimeOffset.UtcNow;
        double busyBefore = ProcStat.ReadMachineBusy();
        var watch = Stopwatch.StartNew();
        var writers = new List<ProbeWriter>();
        try
        {
            if (keys.Length > 0)
                for (int i = 0; i < 4; i++) writers.Add(await ProbeWriter.StartAsync(cluster, i % 3, keys, TimeSpan.FromSeconds(5), i + 1));
            var length = TimeSpan.FromMinutes(minutes);
            while (watch.Elapsed < length)
            {
                await Task.Delay(TimeSpan.FromSeconds(Math.Min(60, (length - watch.Elapsed).TotalSeconds)));
                Console.WriteLine($"  {name}: {watch.Elapsed.TotalMinutes:0.0} min, load average {Machine.LoadAverage()}" +
                    (writers.Count > 0 ? $", {writers.Sum(w => w.Acknowledged):N0} writes, {writers.Sum(w => w.Errors):N0} failed" : ""));
            }
            await Task.WhenAll(writers.Select(w => w.StopAsync()));
        }
        finally
        {
            phase.Writes = writers.Sum(w => w.Acknowledged);
            phase.FailedWrites = writers.Sum(w => w.Errors);
            foreach (var w in writers) await w.DisposeAsync();
        }
        phase.MachineBusy = (ProcStat.ReadMachineBusy() - busyBefore) / (watch.Elapsed.TotalSeconds * Environment.ProcessorCount);
        phase.LoadAverageEnd = Machine.LoadAverage();
        await using var client = await cluster.ClientAsync(0);
        var history = await client.GetEventsAsync(since, [ReplicationEventType.LeaderElected, ReplicationEventType.LeaderLost], [], [], null, TimeSpan.FromSeconds(10), CancellationToken.None);
        foreach (var e in history.Events.Where(e => e.Time >= since))
        {
            bool transfer = e.Message.Contains("transfer", StringComparison.OrdinalIgnoreCase);
            if (e.Type == ReplicationEventType.LeaderElected)
            {
                if (transfer) phase.Transfers++;
                else phase.LeaderChanges++;
            }
            if (!transfer && phase.Events.Count < 50) phase.Events.Add($"{e.Time:HH:mm:ss.fff} node {e.Node} shard {e.Shard} {e.Type}: {e.Message}");
        }
        foreach (var (node, reason) in history.Unread) phase.Events.Add($"events of node {node} not read: {reason}");
        Console.WriteLine($"  {name} done: {phase.LeaderChanges} leader changes, {phase.Transfers} transfers, machine busy {phase.MachineBusy:P0}, load average {phase.LoadAverageEnd}");
        return phase;
    }
}
