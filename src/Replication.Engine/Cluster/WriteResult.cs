namespace Replication.Engine.Cluster;

/// <summary>
/// Outcome of one <see cref="KeyWrite"/>. On success <see cref="Record"/> is the key as written
/// (null for a delete) and <see cref="Error"/> is null. A write rejected by the state machine
/// (version conflict) carries the exception in <see cref="Error"/> and changed nothing.
/// </summary>
public sealed record WriteResult(KeyWrite Write, ReplicationKey? Record, bool Existed, ReplicationException? Error);
