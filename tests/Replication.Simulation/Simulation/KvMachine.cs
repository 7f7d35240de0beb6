using Replication.Engine.Raft;
using Replication.Engine.Ring;
using Replication.Engine.Storage;

namespace Replication.Simulation.Simulation;

/// <summary>
/// An in-memory key-value state machine of one shard with exactly the semantics of the product's
/// KvStore.Apply (same command codec, same conditions and versions, the same split rule), plus its
/// applied index. The simulated node keeps a volatile one and a durable checkpoint of it (the product
/// commits its state machine lazily and replays the log from the applied index after a crash).
/// Splits (<see cref="ShardCommand"/>): the machine knows the ranges the splits it applied gave its
/// shard and the shards split off it (the product's shard_range rows); whether a split takes effect is
/// the product's <see cref="KvStore.SplitApplies"/>, and an op on a key of a part split off is refused
/// (<see cref="KvOpResult.NotOwned"/>), unless <paramref name="checkOwnership"/> is off (the
/// <see cref="Mutant.OwnershipCheckedAtProposal"/> mutant). Not thread-safe.
/// </summary>
public sealed class KvMachine(int shard = 0)
{
    private readonly SortedDictionary<string, (string Value, long Version)> _kv = new(StringComparer.Ordinal);
    private Dictionary<int, (ulong Start, ulong Last)> _ranges = new();

    public int Shard { get; } = shard;
    public long Applied { get; private set; }

    /// <summary>The split the last <see cref="Apply"/> carried out, with the rows it moved to the new shard (null: none).</summary>
    public (ShardCommand Split, KvMachine Moved)? LastSplit { get; private set; }

    /// <summary>The ranges known to this state machine: its own since a split, and those of the shards split off it.</summary>
    public IReadOnlyDictionary<int, (ulong Start, ulong Last)> Ranges => _ranges;

    public KvMachine Clone()
    {
        var c = new KvMachine(Shard) { Applied = Applied, _ranges = new Dictionary<int, (ulong, ulong)>(_ranges) };
        foreach (var (k, v) in _kv) c._kv[k] = v;
        return c;
    }

    /// <summary>A copy of this state as the state at <paramref name="index"/> (a split group's founding state: Simulator.Splits.cs).</summary>
    public KvMachine At(long index)
    {
        var c = Clone();
        c.Applied = index;
        return c;
    }

    /// <summary>
    /// This state as a Raft snapshot of the shard carries it (NodeHost.StartSnapshotTransfer, SnapshotChunkCodec): the rows,
    /// the applied index and the shard's own range, not the ranges of the shards split off it (the product records those per
    /// shard, each with its own group). <paramref name="withRange"/> false: the product before snapshots carried a range
    /// (<see cref="Mutant.SnapshotCarriesNoRange"/>).
    /// </summary>
    public KvMachine ForTransfer(bool withRange)
    {
        var c = Clone();
        c._ranges = withRange && _ranges.TryGetValue(Shard, out var r) ? new() { [Shard] = r } : new();
        return c;
    }

    /// <summary>
    /// As KvStore.InstallSnapshot: this snapshot's rows and applied index replace those of <paramref name="current"/>, the
    /// replica's state machine; the range it carries replaces the shard's; without one (never split, or the mutant) the range
    /// <paramref name="current"/> recorded stays, as do the ranges it knows of other shards.
    /// </summary>
    public KvMachine InstalledOver(KvMachine current)
    {
        var c = Clone();
        c._ranges = new Dictionary<int, (ulong, ulong)>(current._ranges);
        foreach (var (shard, range) in _ranges) c._ranges[shard] = range;
        return c;
    }

    public (string? Value, long Version) Get(string key) => _kv.TryGetValue(key, out var v) ? v : (null, 0);

    /// <summary>The keys present, in ordinal order.</summary>
    public IEnumerable<string> Keys() => _kv.Keys;

    /// <summary>Whether the shard owns <paramref name="key"/> as this state machine has applied it (KvStore.Owns).</summary>
    public bool Owns(string key) => !_ranges.TryGetValue(Shard, out var r) || (KeyHash.Of(key) is var h && h >= r.Start && h <= r.Last);

    /// <summary>Applies one committed entry (the next one: Index == Applied + 1); returns its op results.</summary>
    public IReadOnlyList<KvOpResult> Apply(LogEntry e, bool checkOwnership = true)
    {
        if (e.Index != Applied + 1) throw new InvalidOperationException($"apply of {e.Index} after {Applied}: gap or repeat");
        Applied = e.Index;
        LastSplit = null;
        if (e.Type != EntryType.Normal || e.Data.Length == 0) return [];
        if (ShardCommand.IsShardCommand(e.Data))
        {
            var split = ShardCommand.Decode(e.Data);
            if (KvStore.SplitApplies(_ranges, Shard, split)) LastSplit = (split, ApplySplit(split));
            return [];
        }
        var ops = KvCommand.Decode(e.Data);
        var results = new KvOpResult[ops.Count];
        for (int i = 0; i < ops.Count; i++) results[i] = checkOwnership && !Owns(ops[i].Key) ? KvOpResult.NotOwned : ApplyOp(ops[i]);
        return results;
    }

    /// <summary>As KvStore.ApplySplit: the rows of the right range leave this shard for the new one; both ranges are recorded.</summary>
    private KvMachine ApplySplit(ShardCommand c)
    {
        var moved = new KvMachine(c.NewShard);
        foreach (var key in _kv.Keys.Where(k => KeyHash.Of(k) is var h && h >= c.RightStart && h <= c.RightLast).ToList())
        {
            moved._kv[key] = _kv[key];
            _kv.Remove(key);
        }
        _ranges[Shard] = (c.LeftStart, c.LeftLast);
        _ranges[c.NewShard] = (c.RightStart, c.RightLast);
        moved._ranges[c.NewShard] = (c.RightStart, c.RightLast);
        return moved;
    }

    private KvOpResult ApplyOp(KvOp op)
    {
        long current = _kv.TryGetValue(op.Key, out var v) ? v.Version : 0;
        bool existed = current != 0;
        if (op.ExpectedVersion is { } expected && expected != current)
            return new KvOpResult(Applied: false, Version: 0, Existed: existed, ActualVersion: current);
        if (op.Type == KvOpType.Put)
        {
            _kv[op.Key] = (op.Value!, current + 1);
            return new KvOpResult(Applied: true, Version: current + 1, Existed: existed, ActualVersion: current);
        }
        _kv.Remove(op.Key);
        return new KvOpResult(Applied: true, Version: 0, Existed: existed, ActualVersion: current);
    }

    /// <summary>Readable dump of the contents, for comparing replicas.</summary>
    public string Dump() => string.Join(", ", _kv.Select(p => $"{p.Key}={p.Value.Value}@v{p.Value.Version}"));
}
