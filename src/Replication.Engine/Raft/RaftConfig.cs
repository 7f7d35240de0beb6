namespace Replication.Engine.Raft;

/// <summary>
/// Static configuration of one Raft node in one group. Immutable. Time is counted in ticks:
/// the core has no clock; whoever drives it calls <see cref="RaftNode.Tick"/> at a steady rate.
/// </summary>
public sealed record RaftConfig
{
    /// <summary>This node's id (non-zero).</summary>
    public required int Id { get; init; }
    /// <summary>The Raft group (shard) this node belongs to; stamped on every message.</summary>
    public int Group { get; init; }
    /// <summary>
    /// The group's bootstrap voters: the membership at index 0, identical on every node and every
    /// restart. Later membership lives in the log (ConfChange entries) and in snapshot metadata,
    /// which takes precedence when given to the constructor. Empty for a node joining an existing
    /// group: it learns the membership from the leader (RaftNode.Membership.cs).
    /// </summary>
    public required IReadOnlyList<int> Voters { get; init; }
    /// <summary>The group's bootstrap learners (non-voting members that receive the log).</summary>
    public IReadOnlyList<int> Learners { get; init; } = Array.Empty<int>();

    /// <summary>Base election timeout; each term draws a timeout in [ElectionTicks, 2*ElectionTicks).</summary>
    public int ElectionTicks { get; init; } = 10;
    /// <summary>Leader heartbeat interval. Must be smaller than <see cref="ElectionTicks"/>.</summary>
    public int HeartbeatTicks { get; init; } = 1;

    /// <summary>Run a pre-vote before every election so a partitioned node rejoining cannot
    /// disrupt a healthy leader by bumping the term (thesis 9.6).</summary>
    public bool PreVote { get; init; } = true;
    /// <summary>A leader that has not heard from a quorum for an election timeout steps down,
    /// and followers that heard from a leader within the timeout refuse to vote (thesis 6.2, 4.2.3).
    /// Required for lease reads.</summary>
    public bool CheckQuorum { get; init; } = true;

    /// <summary>
    /// An idle, settled group stops heartbeating, and its followers rely on the leader's node liveness instead
    /// (<see cref="RaftNode.HeardFrom"/>, fed by the host); see RaftNode.Quiesce.cs. Off: heartbeats never stop.
    /// </summary>
    public bool Quiesce { get; init; }

    /// <summary>Most entry bytes in one Append message.</summary>
    public int MaxSizePerMessage { get; init; } = 1 << 20;
    /// <summary>Most Append messages in flight to one follower in replicate state.</summary>
    public int MaxInflightMessages { get; init; } = 256;
    /// <summary>Most entry bytes (<see cref="LogEntry.Size"/>) in flight to one follower; released
    /// as the follower acknowledges. An empty window always admits one message.</summary>
    public long MaxInflightBytes { get; init; } = 64L << 20;

    /// <summary>
    /// Ticks subtracted from the election timeout when computing a leader lease, to absorb clock
    /// drift between nodes (tick rates differing). A lease is valid for
    /// ElectionTicks - LeaseDriftTicks ticks after the send time of the heartbeat round a quorum answered;
    /// safe while tick periods differ by at most a factor (ElectionTicks - 1) / (ElectionTicks -
    /// LeaseDriftTicks) (the argument is in RaftNode.Read.cs).
    /// </summary>
    public int LeaseDriftTicks { get; init; } = 2;

    /// <summary>Index the state machine had applied when this node started (entries up to it are not re-delivered).</summary>
    public long Applied { get; init; }

    /// <summary>Randomness for election timeouts. Inject a seeded instance for deterministic tests.</summary>
    public Random Random { get; init; } = new();

    /// <summary>Fault injection for the simulator only (see <see cref="RaftMutation"/>); None in production.</summary>
    internal RaftMutation Mutation { get; init; }

    internal void Validate()
    {
        if (Id == 0) throw new ArgumentException("Node id 0 is reserved for 'none'.");
        if (HeartbeatTicks <= 0 || ElectionTicks <= HeartbeatTicks)
            throw new ArgumentException("Need 0 < HeartbeatTicks < ElectionTicks.");
        // 0 would make the lease outlive a voter's refusal by up to one tick even with equal clocks (RaftNode.Read.cs).
        if (LeaseDriftTicks < 1 || LeaseDriftTicks >= ElectionTicks)
            throw new ArgumentException("Need 1 <= LeaseDriftTicks < ElectionTicks.");
        if (Voters.Intersect(Learners).Any()) throw new ArgumentException("A node cannot be both voter and learner.");
        if (MaxInflightMessages <= 0 || MaxSizePerMessage <= 0 || MaxInflightBytes <= 0) throw new ArgumentException("Flow-control limits must be positive.");
    }
}
