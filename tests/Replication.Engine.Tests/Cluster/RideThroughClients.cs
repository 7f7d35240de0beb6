using System.Collections.Concurrent;
using System.Diagnostics;
using Replication.Engine.Client;
using Replication.Engine.Cluster;
using Replication.Engine.Verification;
using Xunit;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// Clients for the ride-through tests (issue 10, item 7): each connected to one node, putting unique values and reading
/// linearizably a few keys, every request recorded in a history (how it was invoked and how it ended). The requests'
/// timeout (<see cref="OpTimeout"/>) is longer than any test bound, so only the client's failover can release a request
/// that waits on a node that stopped answering. Times are read from the test's <paramref name="clock"/>, the one its log uses. The history is checked with the engine's linearizability checker.
/// </summary>
internal sealed class RideThroughClients(Func<string, Task<ClusterClient>> connect, Action<string> log, Stopwatch clock)
{
    public static readonly TimeSpan OpTimeout = TimeSpan.FromSeconds(60);
    /// <summary>What a request may end with while a node is silent: the outcome-unknown and no-quorum errors of the README's table.</summary>
    public static readonly HashSet<string> FailoverErrorIds = [RemoteOperationException.OutcomeUnknown, "QuorumUnavailable", RemoteOperationException.RequestTimeout];

    private readonly Stopwatch _clock = clock;
    private readonly ConcurrentBag<HistoryOp> _history = new();
    private readonly ConcurrentBag<(int Client, string Kind, TimeSpan Took, string? ErrorId)> _ended = new();
    /// <summary>Requests that took longer than this are logged one by one (how they ended, and when).</summary>
    private static readonly TimeSpan LogSlowerThan = TimeSpan.FromMilliseconds(500);
    /// <summary>Every acknowledged write: its client, when it was invoked, when it was acknowledged.</summary>
    private readonly ConcurrentBag<(int Client, TimeSpan Invoked, TimeSpan At)> _acknowledged = new();
    private int _nextOp;

    public TimeSpan Now => _clock.Elapsed;

    /// <summary>Runs client <paramref name="client"/> against <paramref name="endpoint"/> until <paramref name="stop"/>.</summary>
    public Task RunAsync(int client, string endpoint, string[] keys, CancellationToken stop) => Task.Run(() => LoopAsync(client, endpoint, keys, stop));

    /// <summary>Whether <paramref name="client"/> had a write invoked after <paramref name="since"/> acknowledged.</summary>
    public bool AcknowledgedSince(int client, TimeSpan since) => _acknowledged.Any(a => a.Client == client && a.Invoked > since);

    /// <summary>Acknowledged reads and writes invoked after <paramref name="since"/>.</summary>
    public int OkSince(TimeSpan since) => _history.Count(o => o.Status == OpStatus.Ok && o.Invoke > since.Ticks);

    /// <summary>Per client in <paramref name="clients"/>: ms from <paramref name="since"/> to its first acknowledged write invoked after it (a figure, logged).</summary>
    public string FirstAcknowledgedAfter(TimeSpan since, IEnumerable<int> clients) =>
        string.Join(", ", _acknowledged.Where(a => clients.Contains(a.Client) && a.Invoked > since).GroupBy(a => a.Client).OrderBy(g => g.Key)
            .Select(g => $"client {g.Key} {(g.Min(a => a.At) - since).TotalMilliseconds:0} ms"));

    /// <summary>
    /// Every request ended with a value or with one of <see cref="FailoverErrorIds"/>; then final reads of
    /// <paramref name="keys"/> through <paramref name="reader"/> join the history, which must be linearizable.
    /// </summary>
    public async Task CheckAsync(ClusterClient reader, string[] keys, TimeSpan bound)
    {
        var ended = _ended.ToArray();
        log($"{ended.Length} requests; errors: {string.Join(", ", ended.Where(e => e.ErrorId is not null).GroupBy(e => e.ErrorId).Select(g => $"{g.Key} x{g.Count()}"))}; "
            + $"longest request {ended.Max(e => e.Took).TotalMilliseconds:0} ms");
        foreach (var e in ended.Where(e => e.ErrorId is not null))
            Assert.True(FailoverErrorIds.Contains(e.ErrorId!), $"client {e.Client}: a {e.Kind} ended with ErrorId {e.ErrorId}, not one documented for a failover");
        foreach (var key in keys)
        {
            var invoke = _clock.Elapsed.Ticks;
            var final = await reader.GetAsync(key, ReadConsistency.Linearizable, bound, CancellationToken.None);
            _history.Add(HistoryOp.Ok(Interlocked.Increment(ref _nextOp), 100, new KvInput(KvOpKind.Get, key), invoke, _clock.Elapsed.Ticks,
                new KvOutput(final is not null, final?.Value, final?.Version ?? 0)));
        }
        var history = _history.ToArray();
        var verdict = LinearizabilityChecker.Check(history);
        log($"history: {history.Length} operations ({history.Count(o => o.Status == OpStatus.Ok)} ok, {history.Count(o => o.Status == OpStatus.Unknown)} unknown); "
            + $"checker: {verdict.Outcome} in {verdict.Steps} steps {verdict.Detail}");
        Assert.NotEqual(CheckOutcome.NotLinearizable, verdict.Outcome);
    }

    /// <summary>Logs a request that took longer than <see cref="LogSlowerThan"/>: when it began and ended, and how.</summary>
    private void Note(int client, string kind, TimeSpan started, string? errorId, string? message)
    {
        var now = _clock.Elapsed;
        if (now - started > LogSlowerThan)
            log($"client {client}: {kind} from {started.TotalSeconds:0.000} to {now.TotalSeconds:0.000} s: {(errorId is null ? "ok" : $"{errorId}: {message}")}");
    }

    /// <summary>One client on one node: puts with unique values and linearizable gets of the keys, each recorded with how it ended.</summary>
    private async Task LoopAsync(int client, string endpoint, string[] keys, CancellationToken stop)
    {
        var random = new Random(client * 7919 + 3);
        await using var cluster = await connect(endpoint);
        for (int n = 0; !stop.IsCancellationRequested; n++)
        {
            string key = keys[random.Next(keys.Length)];
            var started = _clock.Elapsed;
            if (random.Next(3) != 0)
            {
                string value = $"c{client}-{n}";
                var input = new KvInput(KvOpKind.Put, key, value);
                string? errorId;
                try
                {
                    var r = (await cluster.WriteAsync(new[] { new KeyWrite(key, value) }, WriteConcern.Majority, OpTimeout, CancellationToken.None))[0];
                    errorId = r.Error?.ErrorId;
                    Note(client, "write", started, r.Error?.ErrorId, r.Error?.Message);
                    if (r.Error is null)
                    {
                        _history.Add(HistoryOp.Ok(Interlocked.Increment(ref _nextOp), client, input, started.Ticks, _clock.Elapsed.Ticks, new KvOutput(true, value, r.Record!.Version)));
                        _acknowledged.Add((client, started, _clock.Elapsed));
                    }
                    else _history.Add(HistoryOp.Unknown(Interlocked.Increment(ref _nextOp), client, input, started.Ticks));
                }
                catch (ReplicationException e)
                {
                    errorId = e.ErrorId;
                    Note(client, "write", started, e.ErrorId, e.Message);
                    _history.Add(HistoryOp.Unknown(Interlocked.Increment(ref _nextOp), client, input, started.Ticks));
                }
                _ended.Add((client, "write", _clock.Elapsed - started, errorId));
            }
            else
            {
                var input = new KvInput(KvOpKind.Get, key);
                string? errorId = null;
                try
                {
                    var read = await cluster.GetAsync(key, ReadConsistency.Linearizable, OpTimeout, CancellationToken.None);
                    Note(client, "read", started, null, null);
                    _history.Add(HistoryOp.Ok(Interlocked.Increment(ref _nextOp), client, input, started.Ticks, _clock.Elapsed.Ticks,
                        new KvOutput(read is not null, read?.Value, read?.Version ?? 0)));
                }
                catch (ReplicationException e)
                {
                    errorId = e.ErrorId;
                    Note(client, "read", started, e.ErrorId, e.Message);
                    _history.Add(HistoryOp.Failed(Interlocked.Increment(ref _nextOp), client, input, started.Ticks, _clock.Elapsed.Ticks));
                }
                _ended.Add((client, "read", _clock.Elapsed - started, errorId));
            }
        }
    }
}
