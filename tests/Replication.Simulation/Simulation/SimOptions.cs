namespace Replication.Simulation.Simulation;

/// <summary>
/// The shape of one simulated run. Everything but <see cref="Seed"/>, <see cref="Mutant"/> and
/// <see cref="Trace"/> is drawn from the seed by <see cref="FromSeed"/>, so a seed alone replays a run.
/// Time is logical: one Raft tick is <see cref="TickUnits"/> units; messages take whole units.
/// </summary>
public sealed record SimOptions
{
    public const int TickUnits = 10;

    public required int Seed { get; init; }
    public Mutant Mutant { get; init; }
    /// <summary>Write every event to the trace (for replaying a failing seed).</summary>
    public bool Trace { get; init; }

    public int Nodes { get; init; } = 3;
    public int Clients { get; init; } = 4;
    public int Keys { get; init; } = 3;
    /// <summary>Ticks of client load under faults, before everything heals.</summary>
    public int ChaosTicks { get; init; } = 600;
    /// <summary>Mean ticks between two fault events.</summary>
    public int FaultIntervalTicks { get; init; } = 25;
    public double DropRate { get; init; }
    public double DuplicateRate { get; init; }
    /// <summary>Share of messages held back long (up to <see cref="LongDelayUnits"/>), which reorders them.</summary>
    public double LongDelayRate { get; init; }
    public int LongDelayUnits { get; init; } = 120;
    /// <summary>
    /// Share of the long-held messages held longer than an election timeout (up to four): appends,
    /// vote answers and acknowledgments that arrive terms late.
    /// </summary>
    public double StaleDelayRate { get; init; }
    /// <summary>
    /// Share of the messages a partition stops that it holds rather than drops (a switch buffer, a
    /// TCP retransmission): they arrive once the partition heals, long after they were sent.
    /// </summary>
    public double PartitionHoldRate { get; init; }
    /// <summary>A client gives up on an operation after this many ticks and records it as unknown.</summary>
    public int ClientTimeoutTicks { get; init; } = 40;

    /// <summary>Share of operations a client sends to a random node instead of the one it believes leads (stale routing).</summary>
    public double RandomRouteRate { get; init; }
    /// <summary>Share of crashes followed by an immediate restart (0-3 ticks) rather than a longer outage.</summary>
    public double QuickRestartRate { get; init; } = 0.5;
    /// <summary>Flow control of the core; small values split appends and exercise the in-flight window.</summary>
    public int MaxSizePerMessage { get; init; } = 1 << 20;
    public int MaxInflightMessages { get; init; } = 256;

    /// <summary>Whether crash faults are drawn at all: some seeds play out network faults undisturbed.</summary>
    public bool Crashes { get; init; } = true;

    /// <summary>Which faults dominate this seed (drawn from it): see <see cref="FaultProfile"/>.</summary>
    public FaultProfile Profile { get; init; }
    /// <summary>
    /// Chance that a node crashes at a critical point of its host loop (see <see cref="CrashPoint"/>):
    /// right after it granted a vote, or a leader right after it made new entries durable but before
    /// sending them. Crashes at those instants are what durability and commit-rule bugs need.
    /// </summary>
    public double CrashPointRate { get; init; }
    /// <summary>Percentage of client operations that are gets (the rest: put, delete, compare-and-set).</summary>
    public int ReadPercent { get; init; } = 25;
    /// <summary>
    /// Share of timeouts after which a client tries the same node again rather than another one:
    /// clients keep talking to the node they last believed led until it tells them otherwise.
    /// </summary>
    public double StickyRate { get; init; }

    /// <summary>Applied entries past the last snapshot that make a node compact its log (0 = never).</summary>
    public int CompactEvery { get; init; }
    /// <summary>Entries kept below the applied index at compaction (NodeHost's SnapshotCatchUpEntries).</summary>
    public int CompactKeep { get; init; }

    /// <summary>
    /// Largest relative deviation of a node's clock rate from nominal (each node draws its own rate
    /// within it). The lease is proved for periods within a factor (ElectionTicks - 1) /
    /// (ElectionTicks - LeaseDriftTicks) of each other, 14/13 with the defaults, i.e. 3.7% around
    /// nominal (RaftNode.Read.cs); seeds draw up to 3.5%.
    /// </summary>
    public double ClockDrift { get; init; }

    /// <summary>
    /// Ring mode (Simulator.Moves.cs): the group is one shard of a cluster whose machines join, leave and have replicas
    /// moved to them, placed by the product's PlacementPolicy and moved by MembershipPlan; otherwise membership faults
    /// set the voters directly (Simulator.Membership.cs).
    /// </summary>
    public bool Ring { get; init; }

    /// <summary>
    /// Once in the middle of the faults, a majority of the voters is destroyed for good and the survivor with the longest
    /// log is forced to be the only voter, as Invoke-ReplicationFailover -AllowDataLoss does (Simulator.ForcedRecovery.cs).
    /// </summary>
    public bool ForcedRecovery { get; init; }

    /// <summary>
    /// Shards split during the faults (Simulator.Splits.cs): one to three split requests, each splitting a shard of the
    /// map in two by an entry in its log; clients route their keys (more of them, spread over the hash space) by the map.
    /// </summary>
    public bool Splits { get; init; }

    /// <summary>
    /// Groups quiesce when idle, with machines' liveness signals standing in for heartbeats (Simulator.Quiescence.cs, as
    /// the product's NodeHost); the clients then fall silent for <see cref="QuietTicks"/> of every
    /// <see cref="QuietEveryTicks"/> ticks of the faults (0: never), so that groups do quiesce while faults go on.
    /// </summary>
    public bool Quiesce { get; init; }
    public int QuietEveryTicks { get; init; }
    public int QuietTicks { get; init; }

    /// <summary>Raft timing, as the product's NodeHostOptions defaults.</summary>
    public int ElectionTicks { get; init; } = 15;
    public int HeartbeatTicks { get; init; } = 3;

    public static SimOptions FromSeed(int seed, Mutant mutant = Mutant.None, bool trace = false)
    {
        var r = new Random(seed ^ 0x5EED);
        bool ring = new Random(seed ^ 0x121A6).Next(5) < 2;
        var profile = (FaultProfile)r.Next(3);
        bool forcedRecovery = !ring && (mutant == Mutant.ForcedRecoveryFromCommitted || new Random(seed ^ 0xF0CE).Next(4) == 0);
        // Drawn apart too (two seeds in five, never with a forced recovery: Simulator.Splits.cs); a split seed's clients use
        // four to six keys, so both halves of a split hold some.
        var splitDraw = new Random(seed ^ 0x5B11);
        bool splits = !forcedRecovery && (mutant is Mutant.OwnershipCheckedAtProposal or Mutant.SplitGroupFoundedAtZero || splitDraw.Next(5) < 2);
        int splitKeys = 4 + splitDraw.Next(3);
        // Drawn apart too: three seeds in five quiesce, and most of those have quiet spells long enough to quiesce in.
        var quiesceDraw = new Random(seed ^ 0x9E1E);
        bool quiesce = mutant == Mutant.QuiescedLeaseHeld || quiesceDraw.Next(5) < 3;
        int quietEvery = quiesceDraw.Next(4) == 0 ? 0 : 80 + quiesceDraw.Next(160);
        var options = new SimOptions
        {
            Profile = profile,
            CrashPointRate = profile == FaultProfile.CrashHeavy ? 0.05 + r.NextDouble() * 0.35 : r.Next(3) == 0 ? r.NextDouble() * 0.05 : 0,
            ReadPercent = r.Next(3) == 0 ? 60 + r.Next(30) : 15 + r.Next(30),
            StickyRate = r.NextDouble(),
            CompactEvery = r.Next(3) == 0 ? 0 : 5 + r.Next(60),
            CompactKeep = r.Next(10),
            Seed = seed,
            Mutant = mutant,
            Trace = trace,
            Nodes = r.Next(3) == 0 ? 5 : 3,
            Clients = 2 + r.Next(11),
            Keys = 1 + r.Next(4),
            ChaosTicks = 400 + r.Next(400),
            FaultIntervalTicks = 10 + r.Next(40),
            DropRate = r.Next(4) == 0 ? 0 : r.NextDouble() * 0.15,
            DuplicateRate = r.Next(3) == 0 ? 0 : r.NextDouble() * 0.05,
            LongDelayRate = r.Next(4) == 0 ? 0 : r.NextDouble() * 0.08,
            ClientTimeoutTicks = 5 + r.Next(40),
            RandomRouteRate = r.NextDouble() * 0.3,
            QuickRestartRate = r.NextDouble(),
            MaxSizePerMessage = r.Next(3) switch { 0 => 1 << 20, 1 => 1 /* one entry per message */, _ => 20 + r.Next(200) },
            MaxInflightMessages = r.Next(2) == 0 ? 256 : 1 + r.Next(8),
            Crashes = profile == FaultProfile.CrashHeavy || r.Next(3) != 0,
            StaleDelayRate = r.Next(3) == 0 ? 0 : r.NextDouble() * 0.3,
            PartitionHoldRate = r.Next(3) == 0 ? 0 : r.NextDouble() * 0.5,
            ClockDrift = mutant == Mutant.ClockDriftBeyondBound ? 0.5 : r.Next(3) == 0 ? 0 : r.NextDouble() * 0.035,
            // Drawn apart from the rest, so the seeds that are not in ring mode run as they did before it existed.
            Ring = ring,
            // The same for forced recovery (one seed in four of those not in ring mode; in ring mode the ring's metadata
            // would need its own recovery, which the product does not offer: README, "Failover runbook").
            ForcedRecovery = forcedRecovery,
            Splits = splits,
            Quiesce = quiesce,
            QuietEveryTicks = quiesce ? quietEvery : 0,
            QuietTicks = quiesce && quietEvery > 0 ? 30 + quiesceDraw.Next(quietEvery / 2) : 0,
        };
        return splits ? options with { Keys = splitKeys } : options;
    }

    public override string ToString() =>
        $"seed {Seed}: {Nodes} nodes, {Clients} clients, {Keys} keys, {ChaosTicks} ticks of faults every ~{FaultIntervalTicks}, " +
        $"drop {DropRate:P1}, dup {DuplicateRate:P1}, long delay {LongDelayRate:P1} ({StaleDelayRate:P0} beyond an election timeout), held by partitions {PartitionHoldRate:P0}, " +
        $"timeout {ClientTimeoutTicks}, random route {RandomRouteRate:P0}, quick restart {QuickRestartRate:P0}, max msg {MaxSizePerMessage}B, inflight {MaxInflightMessages}, " +
        $"{Profile}, crash points {CrashPointRate:P0}, reads {ReadPercent}%, sticky {StickyRate:P0}, " +
        $"{(CompactEvery == 0 ? "no compaction" : $"compact every {CompactEvery} keeping {CompactKeep}")}{(Crashes ? "" : ", no crashes")}{(Ring ? ", ring moves" : "")}{(ForcedRecovery ? ", forced recovery" : "")}{(Splits ? ", splits" : "")}{(Quiesce ? $", quiesce (quiet {QuietTicks} of every {QuietEveryTicks} ticks)" : "")}, clock drift {ClockDrift:P1}{(Mutant == Mutant.None ? "" : ", mutant " + Mutant)}";
}

/// <summary>The fault mix of a seed: some seeds are mostly partitions, some mostly crashes.</summary>
public enum FaultProfile
{
    Balanced,
    /// <summary>Partitions (of the leader, of the leader with a follower, asymmetric) three times as often; crashes rare.</summary>
    PartitionHeavy,
    /// <summary>Crashes three times as often, and crashes at critical points (<see cref="SimOptions.CrashPointRate"/>).</summary>
    CrashHeavy,
}

/// <summary>An instant of the host loop at which a crash is especially telling.</summary>
public enum CrashPoint
{
    /// <summary>A voter has persisted and sent a granted vote.</summary>
    AfterVote,
    /// <summary>A leader has made new entries or a commit advance durable but not sent its messages yet (fsync done, network not).</summary>
    LeaderBeforeSend,
}
