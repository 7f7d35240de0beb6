namespace Replication.Engine.Verification;

/// <summary>
/// The drill's fault plan, a pure function of the seed, the duration, the faults asked for and the cluster's shape: the
/// same arguments always give the same plan (so a seed replays its faults exactly; only the moment-to-moment timing of
/// the real machine differs). One fault at a time, each healed before the next, so a quorum of every shard is always
/// left standing; the first <see cref="WarmUp"/> and the last <see cref="CoolDown"/> of the workload are fault-free.
/// Stateless and thread-safe.
/// </summary>
internal static class FaultSchedule
{
    /// <summary>One planned fault. <see cref="LeaderOfShard"/>: hit the leader of that shard at that moment (the
    /// seeded <see cref="Node"/> when none is known); null: hit <see cref="Node"/>.</summary>
    public sealed record Planned(DrillFault Kind, int Node, int? LeaderOfShard, TimeSpan At, TimeSpan Hold, TimeSpan SlowDelay);

    public static TimeSpan WarmUp(TimeSpan duration) => TimeSpan.FromTicks(Math.Min(TimeSpan.FromSeconds(2).Ticks, duration.Ticks / 10));

    public static TimeSpan CoolDown(TimeSpan duration) => TimeSpan.FromTicks(Math.Min(TimeSpan.FromSeconds(5).Ticks, duration.Ticks / 5));

    public static IReadOnlyList<Planned> Plan(int seed, TimeSpan duration, DrillFault faults, IReadOnlyList<int> nodes, int shards)
    {
        var kinds = Enum.GetValues<DrillFault>().Where(k => k is not DrillFault.None and not DrillFault.All && (faults & k) != 0).ToArray();
        var plan = new List<Planned>();
        if (kinds.Length == 0 || nodes.Count == 0) return plan;
        var random = new Random(seed);
        var end = duration - CoolDown(duration);
        var at = WarmUp(duration);
        for (int i = 0; i < 10_000; i++)
        {
            var kind = kinds[random.Next(kinds.Length)];
            // Holds long enough to outlast an election timeout (150-300 ms by default) most of the time, short enough
            // that many faults fit in a minute.
            var hold = kind switch
            {
                DrillFault.Kill => Millis(random, 800, 3000),
                DrillFault.Pause => Millis(random, 300, 2500),
                DrillFault.Partition => Millis(random, 500, 3000),
                _ => Millis(random, 1000, 3000),
            };
            int node = nodes[random.Next(nodes.Count)];
            int? leaderOf = random.Next(2) == 0 ? random.Next(shards) : null;
            var slow = Millis(random, 20, 150);
            var gap = Millis(random, 300, 1500);
            if (at + hold > end) break;
            plan.Add(new Planned(kind, node, leaderOf, at, hold, slow));
            at += hold + gap;
        }
        return plan;
    }

    private static TimeSpan Millis(Random random, int min, int max) => TimeSpan.FromMilliseconds(random.Next(min, max + 1));
}
