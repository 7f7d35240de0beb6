using Replication.Engine.Raft;
using Replication.Engine.Storage;

namespace Replication.Simulation.Simulation;

/// <summary>
/// An in-memory key-value state machine with exactly the semantics of the product's
/// KvStore.Apply (same command codec, same conditions and versions), plus its applied index.
/// The simulated node keeps a volatile one and a durable checkpoint of it (the product commits
/// its state machine lazily and replays the log from the applied index after a crash). Not thread-safe.
/// </summary>
public sealed class KvMachine
{
    private readonly SortedDictionary<string, (string Value, long Version)> _kv = new(StringComparer.Ordinal);

    public long Applied { get; private set; }

    public KvMachine Clone()
    {
        var c = new KvMachine { Applied = Applied };
        foreach (var (k, v) in _kv) c._kv[k] = v;
        return c;
    }

    public (string? Value, long Version) Get(string key) => _kv.TryGetValue(key, out var v) ? v : (null, 0);

    /// <summary>The keys present, in ordinal order.</summary>
    public IEnumerable<string> Keys() => _kv.Keys;

    /// <summary>Applies one committed entry (the next one: Index == Applied + 1); returns its op results.</summary>
    public IReadOnlyList<KvOpResult> Apply(LogEntry e)
    {
        if (e.Index != Applied + 1) throw new InvalidOperationException($"apply of {e.Index} after {Applied}: gap or repeat");
        Applied = e.Index;
        if (e.Type != EntryType.Normal || e.Data.Length == 0) return [];
        var ops = KvCommand.Decode(e.Data);
        var results = new KvOpResult[ops.Count];
        for (int i = 0; i < ops.Count; i++) results[i] = ApplyOp(ops[i]);
        return results;
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
