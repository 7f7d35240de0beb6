namespace Replication.Engine.Cluster;

/// <summary>
/// The Raft timing an operator sets in milliseconds (New-ReplicationCluster and Start-ReplicationNode
/// -ElectionTimeout -HeartbeatInterval), mapped onto the engine's tick clock. The tick stays at
/// <see cref="TickInterval"/> whatever the timeouts: it is also the resolution of the leader lease and of every
/// other tick-counted timer (a fixed LeaseDriftTicks of 2 absorbs clock drift), so deriving it from the heartbeat
/// would coarsen those with no gain; a 10 ms tick costs one wake-up per node per 10 ms. Milliseconds are rounded up
/// to whole ticks, so a setting is never shorter than asked. Timing is a setting of each start (not stored):
/// nodes of one cluster may differ, and a node restarted without it runs with the defaults.
/// </summary>
public static class RaftTiming
{
    /// <summary>Wall-clock length of one Raft tick.</summary>
    public static readonly TimeSpan TickInterval = TimeSpan.FromMilliseconds(TickMilliseconds);
    public const int TickMilliseconds = 10;

    /// <summary>
    /// Base election timeout; each node draws its timeout per term in [t, 2t). Chosen by measurement (issue 10 item 8,
    /// `./build.ps1 Bench -Only timing`, README "Timing"): three node processes on the 2-core machine with both cores
    /// kept busy, 10 minutes idle and 10 loaded per setting. 400 ms had 55 + 55 leader changes where 150 ms had
    /// 135 + 760 and 300 ms 162 + 259, while a killed leader's shards took their first acknowledged write after a median
    /// of 290 ms (316 ms at 150 ms). Zero changes was reached by none: that machine ran at a load average of 60-140.
    /// Above about 450 ms the draw in [t, 2t) alone would pass the 1 s replacement goal. With LeaseDriftTicks 2 the
    /// lease then needs tick rates within a factor 39/38 (RaftNode.Read.cs): ticks follow the monotonic clock.
    /// </summary>
    public const int DefaultElectionTimeoutMilliseconds = 400;
    /// <summary>Leader heartbeat interval.</summary>
    public const int DefaultHeartbeatIntervalMilliseconds = 30;
    /// <summary>Three ticks: the core needs the election timeout above the lease drift allowance (2 ticks).</summary>
    public const int MinElectionTimeoutMilliseconds = 3 * TickMilliseconds;
    public const int MaxElectionTimeoutMilliseconds = 60_000;
    public const int MinHeartbeatIntervalMilliseconds = TickMilliseconds;
    public const int MaxHeartbeatIntervalMilliseconds = 30_000;

    public const int DefaultElectionTicks = DefaultElectionTimeoutMilliseconds / TickMilliseconds;
    public const int DefaultHeartbeatTicks = DefaultHeartbeatIntervalMilliseconds / TickMilliseconds;

    /// <summary>Whole ticks for <paramref name="milliseconds"/>, rounded up.</summary>
    public static int ToTicks(int milliseconds) => milliseconds <= 0 ? 0 : (milliseconds + TickMilliseconds - 1) / TickMilliseconds;

    /// <summary>
    /// Refuses a timing the Raft core would refuse (RaftConfig.Validate: 0 &lt; heartbeat &lt; election timeout, and the
    /// election timeout above the lease drift allowance), in the operator's milliseconds, before any node starts.
    /// </summary>
    /// <exception cref="ClusterOptionsException">ErrorId InvalidClusterOptions.</exception>
    public static void Validate(TimeSpan tickInterval, int electionTicks, int heartbeatTicks)
    {
        if (tickInterval <= TimeSpan.Zero) throw Bad($"The tick interval must be positive; got {tickInterval}.");
        double tickMs = tickInterval.TotalMilliseconds;
        if (heartbeatTicks < 1) throw Bad($"HeartbeatInterval must be at least one tick ({tickMs} ms); got {heartbeatTicks * tickMs} ms.");
        if (electionTicks <= heartbeatTicks)
            throw Bad($"HeartbeatInterval ({heartbeatTicks * tickMs} ms) must be shorter than ElectionTimeout ({electionTicks * tickMs} ms), " +
                $"counted in {tickMs} ms ticks: a leader must be heard from before its followers time out. Keep it a fifth of the timeout or less.");
        var core = new Raft.RaftConfig { Id = 1, Voters = new[] { 1 }, ElectionTicks = electionTicks, HeartbeatTicks = heartbeatTicks };
        try { core.Validate(); }
        catch (ArgumentException e)
        {
            throw Bad($"ElectionTimeout {electionTicks * tickMs} ms with HeartbeatInterval {heartbeatTicks * tickMs} ms is refused by the Raft core: {e.Message} " +
                $"(ElectionTimeout must be at least {(core.LeaseDriftTicks + 1) * tickMs} ms.)");
        }
    }

    private static ClusterOptionsException Bad(string message) => new(ClusterOptionsException.Invalid, message);
}
