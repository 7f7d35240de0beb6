using System.Diagnostics;
using Replication;
using Replication.Engine.Client;
using Replication.Engine.Cluster;
using Replication.Engine.Ring;
using Replication.Engine.Transport;

/// <summary>
/// The ring scenario's writers (<see cref="RingScenario"/>): each its own client dialling a different node first, one
/// majority write of a fresh key at a time, for as long as the scenario runs. Every acknowledged write is kept (to be
/// read back) with its start time and latency, and whether its key falls in the watched shard's hash range, so any
/// window of the run can be summarized afterwards. A failed write is counted and the writer goes on after a short pause.
/// </summary>
internal sealed class Writers : IAsyncDisposable
{
    private readonly ClusterClient[] _clients;
    private readonly List<(long At, double Ms, bool InShard, string Key, string Value)>[] _acks;
    private readonly CancellationTokenSource _stop;
    private readonly ReplicationShard _watched;
    private readonly int _valueBytes;
    private Task[] _loops = [];
    private long _errors;
    private readonly List<long> _errorsAt = new();
    private string? _firstError;
    private readonly object _gate = new();

    private Writers(ClusterClient[] clients, ReplicationShard watched, int valueBytes, CancellationToken ct)
    {
        _clients = clients;
        _watched = watched;
        _valueBytes = valueBytes;
        _acks = clients.Select(_ => new List<(long, double, bool, string, string)>()).ToArray();
        _stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
    }

    public long Errors => Interlocked.Read(ref _errors);
    public string? FirstError => _firstError;

    public static async Task<Writers> StartAsync(string[] endpoints, ClusterSecret secret, int count, int valueBytes, ReplicationShard watched, CancellationToken ct)
    {
        var clients = await Task.WhenAll(Enumerable.Range(0, count).Select(c =>
            ClusterClient.ConnectAsync(endpoints.Skip(c % endpoints.Length).Concat(endpoints.Take(c % endpoints.Length)).ToArray(), secret, "bench", cancellationToken: ct)));
        var writers = new Writers(clients, watched, valueBytes, ct);
        writers._loops = Enumerable.Range(0, count).Select(c => Task.Run(() => writers.LoopAsync(c))).ToArray();
        return writers;
    }

    private async Task LoopAsync(int c)
    {
        var ct = _stop.Token;
        string pad = new('v', Math.Max(0, _valueBytes - 12));
        for (long seq = 0; !ct.IsCancellationRequested; seq++)
        {
            string key = $"ring-{c}-{seq}", value = $"{seq:D12}{pad}";
            long t0 = Stopwatch.GetTimestamp();
            try
            {
                var results = await _clients[c].WriteAsync([new KeyWrite(key, value)], WriteConcern.Majority, TimeSpan.FromSeconds(10), ct);
                if (results[0].Error is { } error) throw error;
                long t1 = Stopwatch.GetTimestamp();
                ulong h = KeyHash.Of(key);
                lock (_gate) _acks[c].Add((t0, (t1 - t0) * 1000.0 / Stopwatch.Frequency, h >= _watched.HashStart && h <= _watched.HashEnd, key, value));
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                Interlocked.Increment(ref _errors);
                lock (_gate) _errorsAt.Add(t0);
                Interlocked.CompareExchange(ref _firstError, $"{e.GetType().Name}: {e.Message}", null);
                try { await Task.Delay(20, ct); } catch (OperationCanceledException) { }
            }
            catch (OperationCanceledException) { }
        }
    }

    /// <summary>The writes started in [<paramref name="from"/>, <paramref name="to"/>) (Stopwatch timestamps) and acknowledged.</summary>
    public LatencyWindow Window(long from, long to)
    {
        List<(double Ms, bool InShard)> all;
        int errors;
        lock (_gate)
        {
            all = _acks.SelectMany(a => a).Where(a => a.At >= from && a.At < to).Select(a => (a.Ms, a.InShard)).ToList();
            errors = _errorsAt.Count(at => at >= from && at < to);
        }
        var ms = all.Select(a => a.Ms).Order().ToArray();
        var shard = all.Where(a => a.InShard).Select(a => a.Ms).Order().ToArray();
        return new LatencyWindow
        {
            Seconds = Math.Round((to - from) / (double)Stopwatch.Frequency, 2),
            Writes = ms.Length, P50 = Percentile(ms, 0.50), P99 = Percentile(ms, 0.99), Max = ms.Length > 0 ? Math.Round(ms[^1], 1) : 0,
            ShardWrites = shard.Length, ShardP50 = Percentile(shard, 0.50), ShardP99 = Percentile(shard, 0.99),
            Errors = errors,
        };
    }

    /// <summary>
    /// The write p99 of each consecutive window of <paramref name="length"/> ticks within [<paramref name="from"/>,
    /// <paramref name="to"/>) (whole windows only): the idle baseline at a move's own length. A move of a second holds a
    /// few hundred writes, whose p99 is about their third slowest; the idle p99 over 8 s is that of thousands. Compared
    /// with windows of the same length, a move is held to what the idle writes show over as few samples.
    /// </summary>
    public double[] WindowP99s(long from, long to, long length)
    {
        var p99s = new List<double>();
        if (length <= 0) return [];
        for (long start = from; start + length <= to; start += length) p99s.Add(Window(start, start + length).P99);
        return p99s.ToArray();
    }

    /// <summary>Stops the writers (bounded) and returns every acknowledged write.</summary>
    public async Task<IReadOnlyList<(string Key, string Value)>> StopAsync()
    {
        _stop.Cancel();
        await Task.WhenAny(Task.WhenAll(_loops), Task.Delay(TimeSpan.FromSeconds(30)));
        lock (_gate) return _acks.SelectMany(a => a).Select(a => (a.Key, a.Value)).ToArray();
    }

    private static double Percentile(double[] sorted, double q) =>
        sorted.Length == 0 ? 0 : Math.Round(sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)], 2);

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await Task.WhenAny(Task.WhenAll(_loops), Task.Delay(TimeSpan.FromSeconds(30)));
        foreach (var c in _clients) await c.DisposeAsync();
        _stop.Dispose();
    }
}
