namespace Replication.Engine.Cluster;

/// <summary>What a <see cref="NodeHost"/> needs to start: identity, data folder, hosted groups and timing.</summary>
internal sealed record NodeHostOptions
{
    public required int NodeId { get; init; }
    public required Guid ClusterId { get; init; }
    public required string DataPath { get; init; }
    /// <summary>Shard id to its voting members, for every shard this node hosts.</summary>
    public required IReadOnlyDictionary<int, IReadOnlyList<int>> Groups { get; init; }
    public TimeSpan TickInterval { get; init; } = TimeSpan.FromMilliseconds(10);
    public int ElectionTicks { get; init; } = 15;
    public int HeartbeatTicks { get; init; } = 3;
    public int? Seed { get; init; }
    public Action<string>? Log { get; init; }
    /// <summary>Wraps the node's storage writes (fault injection in tests); null = the real stores.</summary>
    public Func<int, Storage.INodeStorage, Storage.INodeStorage>? StorageDecorator { get; init; }
}
