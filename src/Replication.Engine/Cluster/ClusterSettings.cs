namespace Replication.Engine.Cluster;

/// <summary>
/// How a cluster's ring splits, moves and balances, chosen when the cluster is founded (New-ReplicationCluster,
/// Start-ReplicationNode without -Join) and kept in its metadata, so every node acts on the same values. Every value
/// is checked by <see cref="Validate"/>.
/// </summary>
public sealed record ClusterSettings
{
    public static readonly ClusterSettings Default = new();

    /// <summary>Virtual nodes (tokens) per node on the ring (see Ring.RingSettings.DefaultTokensPerNode for the measurement).</summary>
    public int TokensPerNode { get; init; } = Ring.RingSettings.DefaultTokensPerNode;
    /// <summary>A shard holding more keys than this splits in two by itself; 0 = never by size.</summary>
    public long SplitKeys { get; init; } = DefaultSplitKeys;
    /// <summary>A shard committing more log entries per second than this (averaged over <see cref="SplitRateWindow"/>)
    /// splits in two by itself; 0 = never by rate (the default: a burst should not multiply shards).</summary>
    public double SplitWriteRate { get; init; }
    /// <summary>At most this many shards have replicas in motion at once (migration after joins and leaves).</summary>
    public int MaxConcurrentMoves { get; init; } = DefaultMaxConcurrentMoves;
    /// <summary>Move leaderships so that every running voter leads ⌊S/N⌋ or ⌈S/N⌉ shards.</summary>
    public bool BalanceLeaders { get; init; } = true;

    public const long DefaultSplitKeys = 1_000_000;
    public const int DefaultMaxConcurrentMoves = 2;
    public const int MaxMoves = 64;
    /// <summary>The window a write rate is averaged over before it splits a shard.</summary>
    public static readonly TimeSpan SplitRateWindow = TimeSpan.FromSeconds(10);

    /// <exception cref="ClusterOptionsException">A value out of range (ErrorId InvalidClusterOptions).</exception>
    public ClusterSettings Validate()
    {
        if (TokensPerNode is < 1 or > 4096) throw Bad($"TokensPerNode must be between 1 and 4096; got {TokensPerNode}.");
        if (SplitKeys < 0) throw Bad($"SplitKeys must be 0 (never) or positive; got {SplitKeys}.");
        if (!(SplitWriteRate >= 0) || double.IsInfinity(SplitWriteRate)) throw Bad($"SplitWriteRate must be 0 (never) or a positive rate; got {SplitWriteRate}.");
        if (MaxConcurrentMoves < 1 || MaxConcurrentMoves > MaxMoves) throw Bad($"MaxConcurrentMoves must be between 1 and {MaxMoves}; got {MaxConcurrentMoves}.");
        return this;
    }

    /// <summary>The pure ring's parameters for a cluster of replication factor <paramref name="replicationFactor"/>.</summary>
    public Ring.RingSettings ForRing(int replicationFactor) => new() { ReplicationFactor = replicationFactor, TokensPerNode = TokensPerNode };

    private static ClusterOptionsException Bad(string message) => new(ClusterOptionsException.Invalid, message);
}
