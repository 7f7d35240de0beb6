namespace Replication.Engine.Storage;

/// <summary>
/// Outcome of one <see cref="KvOp"/> as applied by <see cref="KvStore.Apply"/>.
/// <see cref="Applied"/>: the op's condition held and it took effect (false: it changed nothing).
/// <see cref="Version"/>: the key's new version after an applied put; 0 for a delete or a rejected op.
/// <see cref="Existed"/>: the key existed just before the op.
/// <see cref="ActualVersion"/>: the key's version just before the op (0 if absent); for a
/// rejected op this is the version that did not match the expectation.
/// <see cref="WrongShard"/>: the key belongs to another shard since a split (the op changed nothing; the proposer
/// retries it with the current shard map).
/// </summary>
public sealed record KvOpResult(bool Applied, long Version, bool Existed, long ActualVersion, bool WrongShard = false)
{
    public static readonly KvOpResult NotOwned = new(false, 0, false, 0, WrongShard: true);
}
