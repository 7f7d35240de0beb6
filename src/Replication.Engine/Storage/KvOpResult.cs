namespace Replication.Engine.Storage;

/// <summary>
/// Outcome of one <see cref="KvOp"/> as applied by <see cref="KvStore.Apply"/>.
/// <see cref="Applied"/>: the op's condition held and it took effect (false: it changed nothing).
/// <see cref="Version"/>: the key's new version after an applied put; 0 for a delete or a rejected op.
/// <see cref="Existed"/>: the key existed just before the op.
/// <see cref="ActualVersion"/>: the key's version just before the op (0 if absent); for a
/// rejected op this is the version that did not match the expectation.
/// </summary>
public sealed record KvOpResult(bool Applied, long Version, bool Existed, long ActualVersion);
