/// <summary>
/// What the timing scenario (TimingScenario, issue 10 item 8) measured, per election timeout tried; saved in
/// timing.json and shown by <see cref="Text"/>.
/// </summary>
internal sealed record TimingResult
{
    public string Machine { get; init; } = "";
    public string Started { get; init; } = "";
    public double PhaseMinutes { get; init; }
    public int Spinners { get; init; }
    public List<Setting> Settings { get; } = new();

    /// <summary>One election timeout: its idle phase, its loaded phase and its kills.</summary>
    public sealed record Setting
    {
        public int ElectionTimeoutMs { get; init; }
        public int HeartbeatMs { get; init; }
        public List<Phase> Phases { get; } = new();
        public FailoverResult Kills { get; init; } = new();
    }

    /// <summary>A phase: leader elections not asked for (not a transfer) and leaderships lost, with the machine's load.</summary>
    public sealed record Phase
    {
        public required string Name { get; init; }
        public double Minutes { get; init; }
        public string LoadAverageStart { get; init; } = "";
        public string LoadAverageEnd { get; set; } = "";
        /// <summary>The machine's busy share (all cores) over the phase.</summary>
        public double MachineBusy { get; set; }
        public int LeaderChanges { get; set; }
        public int Transfers { get; set; }
        public long Writes { get; set; }
        public long FailedWrites { get; set; }
        public List<string> Events { get; } = new();
    }

    public string Text()
    {
        var sb = new System.Text.StringBuilder();
        sb.AppendLine($"- Machine: {Machine}. Run {Started}. Both cores kept busy by {Spinners} busy-loop processes (`sh -c 'while :; do :; done'`) besides whatever else the machine ran.");
        sb.AppendLine($"- Three node processes on 127.0.0.1 (4 shards, 3 voters each); each phase {PhaseMinutes:0.#} min. Idle: no client. Loaded: 4 clients (connections spread over the nodes), " +
            "one majority write at a time each, over 2,000 keys. Leader changes: LeaderElected events not caused by a leader transfer (those are the balancer's, counted apart).");
        sb.AppendLine();
        sb.AppendLine("| election timeout | heartbeat | phase | load average start → end | machine busy | leader changes | transfers | writes (failed) |");
        sb.AppendLine("|---:|---:|---|---|---:|---:|---:|---|");
        foreach (var s in Settings)
            foreach (var p in s.Phases)
                sb.AppendLine($"| {s.ElectionTimeoutMs} ms | {s.HeartbeatMs} ms | {p.Name} {p.Minutes:0.#} min | {p.LoadAverageStart} → {p.LoadAverageEnd} | {p.MachineBusy:P0} | {p.LeaderChanges} | {p.Transfers} | {(p.Name == "loaded" ? $"{p.Writes:N0} ({p.FailedWrites:N0})" : "")} |");
        sb.AppendLine();
        sb.AppendLine("| election timeout | kills | leader killed → new leader elected, ms (min / median / max) | → first acknowledged write, ms (min / median / max) |");
        sb.AppendLine("|---:|---:|---|---|");
        foreach (var s in Settings)
            sb.AppendLine($"| {s.ElectionTimeoutMs} ms | {s.Kills.Kill.Count} | {Stats(s.Kills.KillElection)} | {Stats(s.Kills.Kill)} |");
        sb.AppendLine();
        foreach (var s in Settings)
        {
            foreach (var p in s.Phases)
                foreach (var e in p.Events) sb.AppendLine($"  {s.ElectionTimeoutMs} ms {p.Name}: {e}");
            foreach (var k in s.Kills.Kill.Concat(s.Kills.KillElection)) sb.AppendLine($"  {s.ElectionTimeoutMs} ms kill: {k.Ms:0} ms — {k.Detail}");
            foreach (var n in s.Kills.Notes) sb.AppendLine($"  {s.ElectionTimeoutMs} ms: {n}");
        }
        return sb.ToString();
    }

    private static string Stats(List<FailoverResult.Sample> samples)
    {
        if (samples.Count == 0) return "none";
        var v = samples.Select(s => s.Ms).Order().ToArray();
        double median = v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
        return $"{v[0]:0} / {median:0} / {v[^1]:0}";
    }
}
