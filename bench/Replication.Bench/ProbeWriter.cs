using Replication.Engine;
using System.Diagnostics;
using Replication.Engine.Client;
using Replication.Engine.Cluster;

/// <summary>
/// One client of the failover and timing scenarios: its own connection (to the node it was told to dial first),
/// writing keys from its pool one at a time (majority write concern, a per-request timeout) until stopped, and
/// remembering when each acknowledged write started and ended (<see cref="Stopwatch"/> timestamps). A failed write
/// is counted and retried after 10 ms, so a node that refuses at once cannot turn the loop into a spin. The loop is
/// bounded by <see cref="MaxRun"/> even if no one stops it.
/// </summary>
internal sealed class ProbeWriter : IAsyncDisposable
{
    private static readonly TimeSpan MaxRun = TimeSpan.FromMinutes(30);
    private const int MaxAcks = 2_000_000;
    private readonly ClusterClient _client;
    private readonly string[] _keys;
    private readonly TimeSpan _timeout;
    private readonly string _value;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<(long Start, long End)> _acks = new();
    private readonly object _gate = new();
    private Task _loop = Task.CompletedTask;
    private long _errors;
    private string? _firstError;

    private ProbeWriter(ClusterClient client, string[] keys, TimeSpan timeout, int connectedTo, int seed)
    {
        _client = client;
        _keys = keys;
        _timeout = timeout;
        ConnectedTo = connectedTo;
        _value = new string((char)('a' + seed % 26), 64);
    }

    /// <summary>Index (0..2) of the node process this client dialled first.</summary>
    public int ConnectedTo { get; }
    public long Errors => Interlocked.Read(ref _errors);
    public string? FirstError => _firstError;
    public long Acknowledged { get { lock (_gate) return _acks.Count; } }

    public static async Task<ProbeWriter> StartAsync(NodeCluster cluster, int connectTo, string[] keys, TimeSpan timeout, int seed)
    {
        var client = await cluster.ClientAsync(connectTo);
        var writer = new ProbeWriter(client, keys, timeout, connectTo, seed);
        writer._loop = Task.Run(() => writer.LoopAsync(seed));
        return writer;
    }

    private async Task LoopAsync(int seed)
    {
        var random = new Random(seed);
        var bound = Stopwatch.StartNew();
        var ct = _stop.Token;
        while (!ct.IsCancellationRequested && bound.Elapsed < MaxRun)
        {
            string key = _keys[random.Next(_keys.Length)];
            long start = Stopwatch.GetTimestamp();
            try
            {
                var results = await _client.WriteAsync([new KeyWrite(key, _value)], WriteConcern.Majority, _timeout, ct);
                if (results[0].Error is { } error) throw error;
                long end = Stopwatch.GetTimestamp();
                lock (_gate) if (_acks.Count < MaxAcks) _acks.Add((start, end));
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { return; }
            catch (Exception e)
            {
                Interlocked.Increment(ref _errors);
                Interlocked.CompareExchange(ref _firstError, $"{(e as ReplicationException)?.ErrorId ?? e.GetType().Name}: {e.Message}", null);
                try { await Task.Delay(10, ct); }
                catch (OperationCanceledException) { return; }
            }
        }
    }

    /// <summary>End timestamps of acknowledged writes, in order.</summary>
    public long[] AckEnds() { lock (_gate) return _acks.Select(a => a.End).ToArray(); }

    /// <summary>The end of the first acknowledged write issued after <paramref name="timestamp"/>, or null. (A write
    /// issued before it and acknowledged just after may have committed before it: it proves nothing about a failover.)</summary>
    public long? FirstAckAfter(long timestamp)
    {
        lock (_gate)
            foreach (var a in _acks)
                if (a.Start > timestamp) return a.End;
        return null;
    }

    public async Task StopAsync()
    {
        _stop.Cancel();
        await _loop;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        await _client.DisposeAsync();
        _stop.Dispose();
    }
}
