using System.Collections.Concurrent;
using System.Diagnostics;
using Replication.Engine.Cluster;
using Replication.Engine.Verification;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// Records puts and linearizable gets against a real cluster as a history for the linearizability checker: a put that
/// was answered is Ok with its version; one that timed out or lost its connection is Unknown (it may still apply); a
/// version conflict is Failed. Times come from one monotonic clock shared by every client.
/// </summary>
internal sealed class HistoryRecorder
{
    private readonly ConcurrentBag<HistoryOp> _history = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private int _nextOp;

    public IReadOnlyList<HistoryOp> History => _history.ToArray();
    public int Acknowledged => _history.Count(o => o.Status == OpStatus.Ok && o.Input.Kind == KvOpKind.Put);

    public async Task<WriteResult?> PutAsync(IReplicationCluster cluster, int client, string key, string value, TimeSpan timeout)
    {
        var input = new KvInput(KvOpKind.Put, key, value);
        long invoke = _clock.Elapsed.Ticks;
        WriteResult r;
        try
        {
            r = (await cluster.WriteAsync(new[] { new KeyWrite(key, value) }, WriteConcern.Majority, timeout, CancellationToken.None))[0];
        }
        catch (ReplicationException)
        {
            _history.Add(HistoryOp.Unknown(Interlocked.Increment(ref _nextOp), client, input, invoke));
            return null;
        }
        long ret = _clock.Elapsed.Ticks;
        if (r.Error is null) _history.Add(HistoryOp.Ok(Interlocked.Increment(ref _nextOp), client, input, invoke, ret, new KvOutput(true, value, r.Record!.Version)));
        else if (r.Error is VersionConflictException or InvalidKeyException) _history.Add(HistoryOp.Failed(Interlocked.Increment(ref _nextOp), client, input, invoke, ret));
        else _history.Add(HistoryOp.Unknown(Interlocked.Increment(ref _nextOp), client, input, invoke));
        return r;
    }

    public async Task<ReplicationKey?> GetAsync(IReplicationCluster cluster, int client, string key, TimeSpan timeout)
    {
        var input = new KvInput(KvOpKind.Get, key);
        long invoke = _clock.Elapsed.Ticks;
        try
        {
            var read = await cluster.GetAsync(key, ReadConsistency.Linearizable, timeout, CancellationToken.None);
            _history.Add(HistoryOp.Ok(Interlocked.Increment(ref _nextOp), client, input, invoke, _clock.Elapsed.Ticks, new KvOutput(read is not null, read?.Value, read?.Version ?? 0)));
            return read;
        }
        catch (ReplicationException)
        {
            _history.Add(HistoryOp.Failed(Interlocked.Increment(ref _nextOp), client, input, invoke, _clock.Elapsed.Ticks));
            return null;
        }
    }

    /// <summary>Random puts (unique values) and gets over <paramref name="keys"/> until <paramref name="stop"/>.</summary>
    public async Task ClientLoopAsync(IReplicationCluster cluster, int client, IReadOnlyList<string> keys, TimeSpan timeout, CancellationToken stop)
    {
        var random = new Random(client * 7919 + 1);
        for (int n = 0; !stop.IsCancellationRequested; n++)
        {
            string key = keys[random.Next(keys.Count)];
            if (random.Next(2) == 0) await PutAsync(cluster, client, key, $"c{client}-{n}", timeout);
            else await GetAsync(cluster, client, key, timeout);
        }
    }

    /// <summary>Reads every key of the history at the end (recorded too) and checks the whole history.</summary>
    public async Task<CheckResult> CheckAsync(IReplicationCluster cluster, TimeSpan timeout)
    {
        foreach (var key in _history.Select(o => o.Input.Key).Distinct().ToArray()) await GetAsync(cluster, -1, key, timeout);
        return LinearizabilityChecker.Check(History);
    }
}
