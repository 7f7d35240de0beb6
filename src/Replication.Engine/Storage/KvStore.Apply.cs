using Replication.Engine.Raft;

namespace Replication.Engine.Storage;

/// <summary>The write side of the state machine: applying committed entries. Node loop thread only.</summary>
public sealed partial class KvStore
{
    /// <summary>
    /// Applies committed entries of <paramref name="shard"/> in ONE transaction that also sets
    /// the shard's applied index and term to the last entry's. Entries at or below the current
    /// applied index are skipped and produce no result (replay after a restart is idempotent);
    /// the rest must continue the applied index without a gap. Each result lists the outcome of
    /// the entry's ops in order; an entry without ops (empty Data: a leader's no-op; or a
    /// ConfChange) gets an empty list but still advances the applied index.
    ///
    /// Ops apply in order, each seeing the effect of the ones before it; an op whose condition
    /// fails changes nothing and does not stop the others (see <see cref="KvOpResult"/>).
    /// Conditions: null = unconditional; 0 = the key must be absent (for a delete this makes it
    /// a successful no-op when absent and a rejection when present: the simplest rule
    /// consistent with put); n &gt; 0 = the key's current version must be n. A delete of an
    /// absent key without condition succeeds with Existed = false.
    /// </summary>
    /// <exception cref="StorageCorruptException">An entry's data is not a valid command; nothing of the call is applied.</exception>
    /// <exception cref="ArgumentException">The entries leave a gap after the applied index; nothing is applied.</exception>
    public IReadOnlyList<EntryApplyResult> Apply(int shard, IReadOnlyList<LogEntry> entries)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (entries.Count == 0) return [];

        using var tx = _conn.BeginTransaction();
        _selectApplied.Transaction = tx;
        _upsertApplied.Transaction = tx;
        _selectVersion.Transaction = tx;
        _upsertKv.Transaction = tx;
        _deleteKv.Transaction = tx;

        long applied = 0;
        _selectApplied.Parameters[0].Value = shard;
        using (var r = _selectApplied.ExecuteReader())
        {
            if (r.Read()) applied = r.GetInt64(0);
        }

        long lastIndex = applied, lastTerm = 0;
        var results = new List<EntryApplyResult>();
        foreach (var e in entries)
        {
            if (e.Index <= lastIndex) continue;
            if (e.Index != lastIndex + 1)
                throw new ArgumentException(
                    $"Shard {shard}: entry {e.Index} does not follow the applied index {lastIndex}; committed entries must be applied without gaps.",
                    nameof(entries));

            IReadOnlyList<KvOpResult> opResults = [];
            if (e.Type == EntryType.Normal && e.Data.Length > 0)
            {
                IReadOnlyList<KvOp> ops;
                try
                {
                    ops = KvCommand.Decode(e.Data);
                }
                catch (StorageCorruptException ex)
                {
                    throw new StorageCorruptException($"State machine '{_filePath}', shard {shard}: entry {e.Index}: {ex.Message}") { Target = e.Index };
                }
                var list = new KvOpResult[ops.Count];
                for (int i = 0; i < ops.Count; i++) list[i] = ApplyOp(shard, e.Index, ops[i]);
                opResults = list;
            }
            results.Add(new EntryApplyResult(e.Index, opResults));
            lastIndex = e.Index;
            lastTerm = e.Term;
        }

        if (lastIndex != applied)
        {
            _upsertApplied.Parameters[0].Value = shard;
            _upsertApplied.Parameters[1].Value = lastIndex;
            _upsertApplied.Parameters[2].Value = lastTerm;
            _upsertApplied.ExecuteNonQuery();
        }
        tx.Commit();
        return results;
    }

    private KvOpResult ApplyOp(int shard, long index, KvOp op)
    {
        _selectVersion.Parameters[0].Value = shard;
        _selectVersion.Parameters[1].Value = op.Key;
        long current = _selectVersion.ExecuteScalar() is long v ? v : 0;
        bool existed = current != 0;

        if (op.ExpectedVersion is { } expected && expected != current)
            return new KvOpResult(Applied: false, Version: 0, Existed: existed, ActualVersion: current);

        if (op.Type is KvOpType.Put or KvOpType.Restore)
        {
            long version = op.Type == KvOpType.Restore ? op.Version!.Value : current + 1;
            _upsertKv.Parameters[0].Value = shard;
            _upsertKv.Parameters[1].Value = op.Key;
            _upsertKv.Parameters[2].Value = op.Value;
            _upsertKv.Parameters[3].Value = version;
            _upsertKv.Parameters[4].Value = index;
            _upsertKv.ExecuteNonQuery();
            return new KvOpResult(Applied: true, Version: version, Existed: existed, ActualVersion: current);
        }

        if (existed)
        {
            _deleteKv.Parameters[0].Value = shard;
            _deleteKv.Parameters[1].Value = op.Key;
            _deleteKv.ExecuteNonQuery();
        }
        return new KvOpResult(Applied: true, Version: 0, Existed: existed, ActualVersion: current);
    }
}
