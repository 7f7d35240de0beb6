/// <summary>
/// The failover scenarios' measurements (FailoverScenario), saved in failover.json and shown by <see cref="Text"/>.
/// Every figure is milliseconds of wall time on the bench machine.
/// </summary>
internal sealed record FailoverResult
{
    public string Machine { get; init; } = "";
    public string Started { get; init; } = "";
    public string LoadAverageStart { get; set; } = "";
    public string LoadAverageEnd { get; set; } = "";
    public int ElectionTimeoutMs { get; init; }
    public int WriteTimeoutMs { get; init; }
    /// <summary>Per shard switchover: the longest time no write to the shard was acknowledged, across the switchover.</summary>
    public List<Sample> Switchover { get; } = new();
    /// <summary>Per kill: from SIGKILL to the first acknowledged write on the slowest of the shards the victim led.</summary>
    public List<Sample> Kill { get; } = new();
    /// <summary>Per kill: from SIGKILL to the slowest of those shards' new leader (its LeaderElected event).</summary>
    public List<Sample> KillElection { get; } = new();
    /// <summary>Per pause: from SIGSTOP to the next acknowledged write of the slowest client.</summary>
    public List<Sample> PauseWorst { get; } = new();
    /// <summary>Per pause: the same over the clients connected to the nodes that were not paused.</summary>
    public List<Sample> PauseWorstHealthy { get; } = new();
    public List<string> Notes { get; } = new();

    /// <summary>One measurement and what it was of.</summary>
    public sealed record Sample(double Ms, string Detail);

    public string Text()
    {
        var sb = new System.Text.StringBuilder();
        sb.AppendLine($"- Machine: {Machine}. Run {Started}; load average (1/5/15 min) {LoadAverageStart} at the start, {LoadAverageEnd} at the end.");
        sb.AppendLine($"- Three node processes on 127.0.0.1 (4 shards, 3 voters each), election timeout {ElectionTimeoutMs} ms, heartbeat {Engine().HeartbeatMs} ms; " +
            $"writers are separate connections from the bench process, one majority write at a time, {WriteTimeoutMs} ms request timeout, retried 10 ms after a failure; " +
            "before the first measurement, six writers wrote to every shard for 3 s (warm-up, not measured).");
        sb.AppendLine();
        sb.AppendLine("| scenario | runs | min ms | median ms | max ms | goal |");
        sb.AppendLine("|---|---:|---:|---:|---:|---|");
        Row(sb, "Planned switchover (Invoke-ReplicationFailover): writes to the shard unavailable", Switchover, "< 50 ms");
        Row(sb, "Leader process SIGKILLed → first acknowledged write (slowest shard it led)", Kill, "< 1000 ms");
        Row(sb, "Leader process SIGKILLed → new leader elected (LeaderElected event)", KillElection, "");
        Row(sb, "Leader process SIGSTOPped 3 s → next acknowledged write, worst client", PauseWorst, "< 1000 ms");
        Row(sb, "… worst client connected to a node that was not paused", PauseWorstHealthy, "");
        sb.AppendLine();
        foreach (var (name, list) in new[] { ("switchover", Switchover), ("kill", Kill), ("election", KillElection), ("pause", PauseWorst), ("pause, healthy nodes", PauseWorstHealthy) })
            foreach (var s in list) sb.AppendLine($"  {name}: {s.Ms:0} ms — {s.Detail}");
        foreach (var n in Notes) sb.AppendLine($"- {n}");
        return sb.ToString();
    }

    private static (int HeartbeatMs, int Tick) Engine() =>
        (Replication.Engine.Cluster.RaftTiming.DefaultHeartbeatIntervalMilliseconds, Replication.Engine.Cluster.RaftTiming.TickMilliseconds);

    private static void Row(System.Text.StringBuilder sb, string name, List<Sample> samples, string goal)
    {
        if (samples.Count == 0)
        {
            sb.AppendLine($"| {name} | 0 | | | | {goal} |");
            return;
        }
        var sorted = samples.Select(s => s.Ms).Order().ToArray();
        double median = sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
        sb.AppendLine($"| {name} | {sorted.Length} | {sorted[0]:0} | {median:0} | {sorted[^1]:0} | {goal} |");
    }
}
