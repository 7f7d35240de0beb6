using System.Collections.Concurrent;
using System.Diagnostics;
using Replication.Engine.Client;
using Replication.Engine.Cluster;
using Replication.Engine.Ring;
using Replication.Engine.Transport;
using Replication.Engine.Verification;
using Xunit;
using Xunit.Abstractions;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// Clients ride through a failover (issue 10, item 7), between real processes: three node processes, two clients
/// connected to each, writing and reading shard 0's keys, while shard 0's leader process (read right before) is
/// paused (SIGSTOP). The requests' timeout is longer than the test's bound, so only the leader change can release a
/// request that waits on the paused leader: every client on the other two nodes must get an acknowledged write it
/// issued during the pause, while the old leader is still paused and after another node leads shard 0 in a newer
/// term (the pause lasts until then, with a bound). Every request ends with a value
/// or with one of the ErrorIds the README documents for a failover (never ServerError), and the whole history,
/// checked with the linearizability checker, must be linearizable. How long after the pause each client had its
/// write acknowledged is logged (a figure, not an assertion: speed is measured by the bench).
/// </summary>
[Trait("Category", "Process")]
public sealed class ProcessFailoverClientTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(45);
    /// <summary>Longer than <see cref="Bound"/>: a request's own timeout never ends the wait on the paused leader within the test.</summary>
    private static readonly TimeSpan OpTimeout = TimeSpan.FromSeconds(60);
    private const int Clients = 6;
    /// <summary>What a request may end with while a leader is paused: the outcome-unknown and no-quorum errors of the README's table.</summary>
    private static readonly HashSet<string> FailoverErrorIds = [RemoteOperationException.OutcomeUnknown, "QuorumUnavailable", RemoteOperationException.RequestTimeout];

    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly ConcurrentBag<HistoryOp> _history = new();
    private readonly ConcurrentBag<(int Client, string Kind, TimeSpan Took, string? ErrorId)> _ended = new();
    /// <summary>Every acknowledged write: its client, when it was invoked, when it was acknowledged.</summary>
    private readonly ConcurrentBag<(int Client, TimeSpan Invoked, TimeSpan At)> _acknowledged = new();
    private int _nextOp;

    private void Log(string line)
    {
        try { output.WriteLine($"{_clock.Elapsed.TotalSeconds,7:0.000} {line}"); } catch (InvalidOperationException) { }
    }

    private static async Task<ClusterClient> ConnectAsync(IEnumerable<string> endpoints) =>
        await ClusterClient.ConnectAsync(endpoints.ToArray(), ClusterSecret.FromString(NodeProcesses.Secret),
            options: new ClusterClientOptions { ConnectTimeout = TimeSpan.FromSeconds(2) });

    private static Task WaitUntil(Func<Task<bool>> condition, string what) => ClusterFixture.EventuallyAsync(condition, what, Bound);

    [Fact]
    public async Task Clients_on_other_nodes_get_acknowledged_writes_while_the_leader_process_is_paused()
    {
        using var procs = new NodeProcesses(Log);
        var ids = new Dictionary<int, int> { [1] = await procs.StartAsync(1, null) };
        ids[2] = await procs.StartAsync(2, joinSlot: 1);
        ids[3] = await procs.StartAsync(3, joinSlot: 2);
        var slotOf = ids.ToDictionary(kv => kv.Value, kv => kv.Key);

        await using var admin = await ConnectAsync(procs.Endpoints);
        await WaitUntil(async () =>
        {
            await admin.WaitForLeadersAsync(null, OpTimeout, CancellationToken.None);
            return admin.GetShards().All(s => s.Voters.Count == 3 && s.Learners.Count == 0 && s.Leader != 0);
        }, "every shard has three voters and a leader");
        var map = ShardRangeMap.Even(admin.ShardCount);
        var keys = Enumerable.Range(0, 1000).Select(i => $"k{i}").Where(k => map.ShardFor(k) == 0).Take(6).ToArray();
        var endpoints = procs.Endpoints.ToArray();

        using var stop = new CancellationTokenSource();
        var clients = Enumerable.Range(0, Clients).Select(c => Task.Run(() => ClientLoopAsync(c, endpoints[c % endpoints.Length], keys, stop.Token))).ToArray();
        await WaitUntil(() => Task.FromResult(_acknowledged.Select(a => a.Client).Distinct().Count() == Clients), "every client had a write acknowledged");

        // Shard 0's leader now (leaderships move: balancing, elections under load), and the clients on the other nodes.
        await admin.WaitForLeadersAsync(0, OpTimeout, CancellationToken.None);
        var before = admin.GetShards()[0];
        int paused = before.Leader;
        string pausedEndpoint = procs.EndpointOf(slotOf[paused]);
        var healthy = endpoints.Where(e => e != pausedEndpoint).ToArray();
        var watched = Enumerable.Range(0, Clients).Where(c => endpoints[c % endpoints.Length] != pausedEndpoint).ToHashSet();
        await using var watcher = await ConnectAsync(healthy);
        Log($"shard 0 led by node {paused} in term {before.Term}; clients {string.Join(", ", watched)} are on the other nodes");

        var pausedAt = _clock.Elapsed;
        Log($"SIGSTOP node {paused}");
        procs.Signal(slotOf[paused], "STOP");
        try
        {
            // The pause lasts until another node leads shard 0 in a newer term and every client on the other nodes has had a
            // write it issued after the pause began acknowledged (bounded): a client whose request waits on the paused
            // leader for good fails this.
            await WaitUntil(() =>
            {
                var now = watcher.GetShards()[0];
                bool failedOver = now.Leader != 0 && now.Leader != paused && now.Term > before.Term;
                return Task.FromResult(failedOver && watched.All(c => _acknowledged.Any(a => a.Client == c && a.Invoked > pausedAt)));
            }, "a new leader of shard 0, and every client on the other nodes had a write issued during the pause acknowledged while the old leader was still paused");
            var first = _acknowledged.Where(a => watched.Contains(a.Client) && a.Invoked > pausedAt).GroupBy(a => a.Client)
                .ToDictionary(g => g.Key, g => (g.Min(a => a.At) - pausedAt).TotalMilliseconds);
            Log($"first acknowledged write issued after the pause began, per client on the other nodes (ms after it began): {string.Join(", ", first.OrderBy(x => x.Key).Select(x => $"client {x.Key} {x.Value:0} ms"))}");
            output.WriteLine($"PAUSE_TO_ACKNOWLEDGED_MS={first.Values.Min():0}..{first.Values.Max():0}");
        }
        finally
        {
            procs.Signal(slotOf[paused], "CONT");
            Log($"SIGCONT node {paused}");
        }
        var resumedAt = _clock.Elapsed;
        await WaitUntil(() => Task.FromResult(_history.Count(o => o.Status == OpStatus.Ok && o.Invoke > resumedAt.Ticks) >= 20), "clients progress after the resume");
        stop.Cancel();
        await Task.WhenAll(clients);

        var ended = _ended.ToArray();
        Log($"{ended.Length} requests; errors: {string.Join(", ", ended.Where(e => e.ErrorId is not null).GroupBy(e => e.ErrorId).Select(g => $"{g.Key} x{g.Count()}"))}; "
            + $"longest request {ended.Max(e => e.Took).TotalMilliseconds:0} ms");
        foreach (var e in ended.Where(e => e.ErrorId is not null))
            Assert.True(FailoverErrorIds.Contains(e.ErrorId!), $"client {e.Client}: a {e.Kind} ended with ErrorId {e.ErrorId}, not one documented for a failover");

        // Final reads through a healthy node join the history; then the whole history must be linearizable.
        await using var reader = await ConnectAsync(healthy);
        foreach (var key in keys)
        {
            var invoke = _clock.Elapsed.Ticks;
            var final = await reader.GetAsync(key, ReadConsistency.Linearizable, Bound, CancellationToken.None);
            _history.Add(HistoryOp.Ok(Interlocked.Increment(ref _nextOp), 100, new KvInput(KvOpKind.Get, key), invoke, _clock.Elapsed.Ticks,
                new KvOutput(final is not null, final?.Value, final?.Version ?? 0)));
        }
        var history = _history.ToArray();
        var verdict = LinearizabilityChecker.Check(history);
        Log($"history: {history.Length} operations ({history.Count(o => o.Status == OpStatus.Ok)} ok, {history.Count(o => o.Status == OpStatus.Unknown)} unknown); "
            + $"checker: {verdict.Outcome} in {verdict.Steps} steps {verdict.Detail}");
        Assert.NotEqual(CheckOutcome.NotLinearizable, verdict.Outcome);
    }

    /// <summary>One client on one node: puts with unique values and linearizable gets of shard 0's keys, each recorded with how it ended.</summary>
    private async Task ClientLoopAsync(int client, string endpoint, string[] keys, CancellationToken stop)
    {
        var random = new Random(client * 7919 + 3);
        await using var cluster = await ConnectAsync(new[] { endpoint });
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
                    _history.Add(HistoryOp.Ok(Interlocked.Increment(ref _nextOp), client, input, started.Ticks, _clock.Elapsed.Ticks,
                        new KvOutput(read is not null, read?.Value, read?.Version ?? 0)));
                }
                catch (ReplicationException e)
                {
                    errorId = e.ErrorId;
                    _history.Add(HistoryOp.Failed(Interlocked.Increment(ref _nextOp), client, input, started.Ticks, _clock.Elapsed.Ticks));
                }
                _ended.Add((client, "read", _clock.Elapsed - started, errorId));
            }
        }
    }
}
