namespace Replication.Engine.Raft;

/// <summary>Volatile state worth reporting (never persisted): who leads and this node's role.</summary>
public readonly record struct SoftState(int Leader, RaftRole Role);
