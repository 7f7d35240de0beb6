namespace Replication.Engine.Ring;

/// <summary>A planned leadership transfer of one shard (<see cref="LeaderBalancer"/>). Immutable.</summary>
/// <param name="Shard">The shard.</param>
/// <param name="FromNode">Its current leader.</param>
/// <param name="ToNode">The voter that should lead it.</param>
public sealed record LeaderTransfer(int Shard, int FromNode, int ToNode);
