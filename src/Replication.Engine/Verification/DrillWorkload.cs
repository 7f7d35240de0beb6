using System.Collections.Concurrent;
using System.Diagnostics;
using Replication.Engine.Client;
using Replication.Engine.Cluster;
using Replication.Engine.Security;

namespace Replication.Engine.Verification;

/// <summary>
/// The drill's clients and the history they record. Each client has its own connection (to a different first node)
/// and loops until the stop time: puts (45%), compare-and-sets on the version it last saw (15%), deletes (5%) and
/// linearizable reads (35%), on a few keys at a time. Keys change every <see cref="EpochLength"/> (a new set of
/// <see cref="KeysPerEpoch"/> keys), so each key's history stays short and carries few writes of unknown outcome, which
/// keeps the linearizability check decidable. Every value is unique ("c{client}-{n}"), so a read names the write it
/// saw. Every operation is recorded with its invoke and return times (<see cref="Stopwatch"/> ticks) and outcome:
/// answered (Ok), refused before it could take effect (Failed: DiskFull, invalid key; a failed read), or unknown
/// (any other error of a write: it may still take effect, at any later time). Thread-safe.
/// </summary>
internal sealed class DrillWorkload(FaultDrillOptions options, int seed, string prefix, int shardCount)
{
    public static readonly TimeSpan EpochLength = TimeSpan.FromSeconds(5);
    private readonly ConcurrentQueue<HistoryOp> _history = new();
    private readonly long _start = Stopwatch.GetTimestamp();
    private int _nextId;
    private long _issued;

    public int KeysPerEpoch { get; } = Math.Clamp(options.Clients * 2, 8, 32);

    /// <summary>Ticks since the workload was created (the history's clock).</summary>
    public long Now() => Stopwatch.GetTimestamp() - _start;

    public TimeSpan Elapsed(long ticks) => TimeSpan.FromSeconds(ticks / (double)Stopwatch.Frequency);

    public long Ticks(TimeSpan t) => (long)(t.TotalSeconds * Stopwatch.Frequency);

    public IReadOnlyCollection<HistoryOp> History => _history;

    /// <summary>Runs every client until <paramref name="stopAt"/> (history ticks), the operation cap, or cancellation.</summary>
    public Task RunAsync(IReadOnlyList<string> endpoints, TransportSecurity security, long stopAt, CancellationToken ct) =>
        Task.WhenAll(Enumerable.Range(0, options.Clients).Select(c => Task.Run(() => ClientAsync(c, endpoints, security, stopAt, ct), CancellationToken.None)));

    private async Task ClientAsync(int client, IReadOnlyList<string> endpoints, TransportSecurity security, long stopAt, CancellationToken ct)
    {
        var random = new Random(unchecked(seed * 31 + client + 1));
        var seen = new Dictionary<string, long>(); // key -> the version this client last saw
        var rotated = endpoints.Skip(client % endpoints.Count).Concat(endpoints.Take(client % endpoints.Count)).ToArray();
        var clientOptions = new ClusterClientOptions
        {
            ConnectTimeout = TimeSpan.FromSeconds(1),
            NetworkMargin = TimeSpan.FromSeconds(1),
            RequestTimeout = options.OperationTimeout + TimeSpan.FromSeconds(1),
            RouteToLeaders = !options.MutantLocalReads, // the mutant's reads must reach followers (ClusterClientOptions)
        };
        ClusterClient? connection = null;
        int n = 0;
        try
        {
            while (!ct.IsCancellationRequested && Now() < stopAt)
            {
                if (connection is null)
                {
                    try
                    {
                        connection = await ClusterClient.ConnectAsync(rotated, security, options: clientOptions, cancellationToken: ct).ConfigureAwait(false);
                    }
                    catch (ReplicationException)
                    {
                        await Task.Delay(100, ct).ConfigureAwait(false); // every node it tried is down for the moment
                        continue;
                    }
                }
                if (Interlocked.Increment(ref _issued) > options.MaxOperations) break;
                long epoch = Now() / Ticks(EpochLength);
                string key = Key(epoch, random.Next(KeysPerEpoch));
                int dice = random.Next(100);
                if (dice < 35) await ReadAsync(connection, client, key, seen, ct).ConfigureAwait(false);
                else
                {
                    var input = dice < 80 ? new KvInput(KvOpKind.Put, key, $"c{client}-{n++}")
                        : dice < 95 ? new KvInput(KvOpKind.Cas, key, $"c{client}-{n++}", seen.GetValueOrDefault(key))
                        : new KvInput(KvOpKind.Delete, key);
                    await WriteAsync(connection, client, input, seen, ct).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        finally
        {
            if (connection is not null) await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Epoch <paramref name="epoch"/>'s key number <paramref name="index"/>.</summary>
    public string Key(long epoch, int index) => $"{prefix}e{epoch}/k{index}";

    private async Task ReadAsync(ClusterClient connection, int client, string key, Dictionary<string, long> seen, CancellationToken ct)
    {
        var input = new KvInput(KvOpKind.Get, key);
        long invoke = Now();
        try
        {
            var read = await connection.GetAsync(key, ReadConsistency.Linearizable, options.OperationTimeout, ct).ConfigureAwait(false);
            Record(HistoryOp.Ok(0, client, input, invoke, Now(), new KvOutput(read is not null, read?.Value, read?.Version ?? 0)));
            seen[key] = read?.Version ?? 0;
        }
        catch (ReplicationException)
        {
            Record(HistoryOp.Failed(0, client, input, invoke, Now())); // a read has no effect: nothing to check
        }
    }

    private async Task WriteAsync(ClusterClient connection, int client, KvInput input, Dictionary<string, long> seen, CancellationToken ct)
    {
        var write = new KeyWrite(input.Key, input.Kind == KvOpKind.Delete ? null : input.Value, input.Kind == KvOpKind.Cas ? input.ExpectedVersion : null);
        long invoke = Now();
        WriteResult result;
        try
        {
            result = (await connection.WriteAsync(new[] { write }, WriteConcern.Majority, options.OperationTimeout, ct).ConfigureAwait(false))[0];
        }
        catch (OperationCanceledException)
        {
            Record(HistoryOp.Unknown(0, client, input, invoke)); // sent, and then the drill stopped waiting
            throw;
        }
        catch (ReplicationException)
        {
            Record(HistoryOp.Unknown(0, client, input, invoke));
            return;
        }
        long ret = Now();
        switch (result.Error)
        {
            case null when input.Kind == KvOpKind.Delete:
                Record(HistoryOp.Ok(0, client, input, invoke, ret, new KvOutput(result.Existed, null, 0)));
                seen[input.Key] = 0;
                break;
            case null:
                Record(HistoryOp.Ok(0, client, input, invoke, ret, new KvOutput(true, input.Value, result.Record!.Version)));
                seen[input.Key] = result.Record.Version;
                break;
            case VersionConflictException conflict when input.Kind == KvOpKind.Cas:
                Record(HistoryOp.Ok(0, client, input, invoke, ret, new KvOutput(false, null, conflict.ActualVersion)));
                seen[input.Key] = conflict.ActualVersion;
                break;
            case DiskFullException or InvalidKeyException:
                Record(HistoryOp.Failed(0, client, input, invoke, ret)); // refused before it was proposed
                break;
            default:
                Record(HistoryOp.Unknown(0, client, input, invoke)); // QuorumUnavailable, OutcomeUnknown, ...: may still apply
                break;
        }
    }

    private void Record(HistoryOp op) => _history.Enqueue(op with { Id = Interlocked.Increment(ref _nextId) });

    /// <summary>
    /// Reads every key the workload used back, linearizably, through a fresh connection, and records each read (client
    /// -1). Returns the keys that could not be read within <paramref name="bound"/> (their writes cannot be verified).
    /// </summary>
    public async Task<IReadOnlyList<string>> ReadBackAsync(IReadOnlyList<string> endpoints, TransportSecurity security, TimeSpan bound, CancellationToken ct)
    {
        var keys = _history.Select(o => o.Input.Key).Distinct().Order(StringComparer.Ordinal).ToArray();
        var unread = new List<string>();
        var watch = Stopwatch.StartNew();
        await using var reader = await ClusterClient.ConnectAsync(endpoints, security, options: new ClusterClientOptions { ConnectTimeout = TimeSpan.FromSeconds(2) }, cancellationToken: ct).ConfigureAwait(false);
        foreach (string key in keys)
        {
            while (true)
            {
                long invoke = Now();
                try
                {
                    var read = await reader.GetAsync(key, ReadConsistency.Linearizable, TimeSpan.FromSeconds(5), ct).ConfigureAwait(false);
                    Record(HistoryOp.Ok(0, -1, new KvInput(KvOpKind.Get, key), invoke, Now(), new KvOutput(read is not null, read?.Value, read?.Version ?? 0)));
                    break;
                }
                catch (ReplicationException) when (watch.Elapsed < bound)
                {
                    await Task.Delay(100, ct).ConfigureAwait(false);
                }
                catch (ReplicationException)
                {
                    unread.Add(key);
                    break;
                }
            }
        }
        return unread;
    }

    /// <summary>
    /// Acknowledged writes whose effect the final read-back of their key contradicts: the key ends with a value written
    /// by an operation that finished before the acknowledged write began (the write vanished), or ends absent although
    /// no delete could have come after the acknowledged put, or ends with a value no write of this workload could have
    /// produced. Values are unique per write, so the final value names its writer. Returns the count and the first case.
    /// </summary>
    public (int Lost, string? First) LostWrites()
    {
        int lost = 0;
        string? first = null;
        var ops = _history.ToArray();
        foreach (var group in ops.GroupBy(o => o.Input.Key))
        {
            var final = group.Where(o => o.Client == -1 && o.Status == OpStatus.Ok).Select(o => o.Output).FirstOrDefault();
            if (final is null) continue; // not read back: reported as undecided instead
            var writes = group.Where(o => o.Client != -1 && o.Input.Kind != KvOpKind.Get && o.Status != OpStatus.Failed).ToArray();
            var acked = writes.Where(o => o.Status == OpStatus.Ok && (o.Input.Kind != KvOpKind.Cas || o.Output!.Applied)).ToArray();
            IEnumerable<HistoryOp> missing;
            if (final.Value is { } value)
            {
                var writer = writes.FirstOrDefault(o => o.Input.Kind is KvOpKind.Put or KvOpKind.Cas && o.Input.Value == value);
                missing = writer is null ? acked : acked.Where(w => w != writer && w.Invoke > writer.Return);
            }
            else
            {
                var deletes = writes.Where(o => o.Input.Kind == KvOpKind.Delete).ToArray();
                missing = acked.Where(w => w.Input.Kind != KvOpKind.Delete && !deletes.Any(d => d.Return > w.Invoke));
            }
            foreach (var w in missing)
            {
                lost++;
                first ??= $"acknowledged {w} is missing: key '{group.Key}' reads back as {(final.Value is null ? "absent" : $"'{final.Value}' v{final.Version}")}";
            }
        }
        return (lost, first);
    }

    /// <summary>
    /// The longest stretch of <paramref name="from"/>..<paramref name="to"/> (history ticks) during which some shard saw no
    /// successful operation on its keys (every shard the workload used).
    /// </summary>
    public TimeSpan LongestUnavailability(long from, long to)
    {
        var map = Ring.ShardRangeMap.Even(shardCount); // the map at the start; a split during the drill only narrows what a shard means here
        long longest = 0;
        foreach (var shard in _history.Where(o => o.Client != -1).GroupBy(o => map.ShardFor(o.Input.Key)))
        {
            long last = from;
            foreach (long ret in shard.Where(o => o.Status == OpStatus.Ok && o.Return >= from && o.Return <= to).Select(o => o.Return).Order())
            {
                longest = Math.Max(longest, ret - last);
                last = ret;
            }
            longest = Math.Max(longest, to - last);
        }
        return Elapsed(longest);
    }
}
