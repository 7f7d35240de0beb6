namespace Replication.Engine.Storage;

/// <summary>
/// One operation of a key-value command (<see cref="KvCommand"/>). <see cref="Value"/> is
/// required for <see cref="KvOpType.Put"/> and <see cref="KvOpType.Restore"/> and must be null for
/// <see cref="KvOpType.Delete"/>. <see cref="ExpectedVersion"/> makes the operation conditional: null =
/// unconditional, 0 = the key must be absent, n &gt; 0 = the key's current version must be n.
/// <see cref="Version"/>: the version a Restore sets (positive); null for every other type.
/// </summary>
public sealed record KvOp(KvOpType Type, string Key, string? Value, long? ExpectedVersion, long? Version = null);
