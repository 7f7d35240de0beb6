using Replication.Engine.Ring;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// How a batch of writes becomes proposals, for every router (embedded and process mode): invalid
/// writes are answered at once and never proposed; the rest are grouped by shard, and each shard's
/// writes are packed into state-machine commands (one Raft log entry each) of bounded size, so a big
/// pipeline batch becomes a few entries of one proposal instead of one huge entry or thousands of
/// tiny ones. Stateless, thread-safe.
/// </summary>
internal static class WriteBatching
{
    /// <summary>
    /// Validates every write (an invalid one gets its <see cref="WriteResult"/> with an
    /// <see cref="InvalidKeyException"/> in <paramref name="results"/> and is left out) and groups the
    /// positions of the valid ones by shard, in input order.
    /// </summary>
    public static Dictionary<int, List<int>> GroupByShard(IReadOnlyList<KeyWrite> writes, IEnumerable<int> positions, ShardRangeMap shards, WriteResult?[] results)
    {
        var byShard = new Dictionary<int, List<int>>();
        foreach (int i in positions)
        {
            var w = writes[i];
            try
            {
                KvLimits.Validate(w.Key, w.Value);
                if (w.Version is long v && (v <= 0 || w.IsDelete))
                    throw new InvalidKeyException("InvalidVersion", $"'{w.Key}': a write sets a version only with a value, and the version must be positive (got {v}).") { Target = w.Key };
            }
            catch (InvalidKeyException ex)
            {
                results[i] = new WriteResult(w, null, false, ex);
                continue;
            }
            int shard = shards.ShardFor(w.Key);
            if (!byShard.TryGetValue(shard, out var list)) byShard[shard] = list = new List<int>();
            list.Add(i);
        }
        return byShard;
    }

    /// <summary>Largest encoded command per log entry (estimated from UTF-16 lengths, upper bound of UTF-8).</summary>
    public const int MaxCommandBytes = 256 * 1024;
    public const int MaxOpsPerCommand = 1000;

    /// <summary>
    /// The writes at <paramref name="positions"/> (indexes into <paramref name="writes"/>, kept in that
    /// order), as commands; each command carries the positions of its writes so results map back.
    /// </summary>
    public static List<(int[] Positions, byte[] Command)> Pack(IReadOnlyList<KeyWrite> writes, IEnumerable<int> positions)
    {
        var chunks = new List<(int[], byte[])>();
        var ops = new List<KvOp>();
        var pos = new List<int>();
        long bytes = 0;
        foreach (int p in positions)
        {
            var w = writes[p];
            long size = w.Key.Length * 3L + (w.Value?.Length ?? 0) * 3L + 32;
            if (ops.Count > 0 && (bytes + size > MaxCommandBytes || ops.Count >= MaxOpsPerCommand)) Flush();
            ops.Add(new KvOp(w.IsDelete ? KvOpType.Delete : w.Version is null ? KvOpType.Put : KvOpType.Restore, w.Key, w.Value, w.ExpectedVersion, w.Version));
            pos.Add(p);
            bytes += size;
        }
        if (ops.Count > 0) Flush();
        return chunks;

        void Flush()
        {
            chunks.Add((pos.ToArray(), KvCommand.Encode(ops)));
            ops.Clear();
            pos.Clear();
            bytes = 0;
        }
    }

    /// <summary>
    /// What a write's applied result means to its caller: the key as written (null for a delete), a
    /// version conflict (nothing written), or, with no result (WriteConcern.Leader: durable on the
    /// leader, not applied yet), success with the key, its shard and log index but Version 0, since
    /// the version is assigned when the entry is applied (null for a delete).
    /// </summary>
    public static WriteResult ToResult(KeyWrite w, int shard, long index, KvOpResult? r, string cluster)
    {
        if (r is null) return new WriteResult(w, w.IsDelete ? null : new ReplicationKey(w.Key, w.Value!, 0, shard, index) { Cluster = cluster }, false, null);
        if (r.WrongShard)
            return new WriteResult(w, null, false, new WrongShardException(shard, $"Shard {shard} split: '{w.Key}' belongs to another shard now (not written).") { Target = w.Key });
        if (!r.Applied)
            return new WriteResult(w, null, r.Existed, new VersionConflictException(w.Key, w.ExpectedVersion, r.ActualVersion) { Target = w.Key });
        var record = w.IsDelete ? null : new ReplicationKey(w.Key, w.Value!, r.Version, shard, index) { Cluster = cluster };
        return new WriteResult(w, record, r.Existed, null);
    }
}
