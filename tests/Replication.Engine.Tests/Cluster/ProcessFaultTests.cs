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
/// Real-process fault tests (issue 5): three node processes on loopback form a cluster by joining;
/// clients write and read concurrently through ClusterClient while the leader process is SIGKILLed
/// and restarted from its folder, and while a leader is SIGSTOPped long enough for a new election and
/// then resumed. Every operation is recorded with its invoke and return times and outcome; the history
/// is checked with the linearizability checker, every acknowledged write must be readable with its
/// last acknowledged value, and the resumed leader must serve no stale read. Every wait is a condition
/// with a bound; every process is killed at the end, also on failure.
/// </summary>
[Trait("Category", "Process")]
public sealed class ProcessFaultTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(45);
    private static readonly TimeSpan OpTimeout = TimeSpan.FromSeconds(3);
    /// <summary>For the few writes the test requires to succeed: the router retries them until this deadline.</summary>
    private static readonly TimeSpan MustSucceed = TimeSpan.FromSeconds(15);
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly ConcurrentBag<HistoryOp> _history = new();
    private int _nextOp;

    private void Log(string line)
    {
        try { output.WriteLine($"{_clock.Elapsed.TotalSeconds,7:0.000} {line}"); } catch (InvalidOperationException) { }
    }

    private static async Task<ClusterClient> ConnectAsync(IEnumerable<string> endpoints, double connectSeconds = 1) =>
        await ClusterClient.ConnectAsync(endpoints.ToArray(), ClusterSecret.FromString(NodeProcesses.Secret),
            options: new ClusterClientOptions { ConnectTimeout = TimeSpan.FromSeconds(connectSeconds) });

    /// <summary>The shard's current leader; a shard shows none (0) for a moment during an election.</summary>
    private static async Task<ReplicationShard> WithLeaderAsync(ClusterClient cluster, int shard)
    {
        ReplicationShard? status = null;
        await WaitUntil(() => Task.FromResult((status = cluster.GetShards()[shard]).Leader != 0), $"shard {shard} has a leader");
        return status!;
    }

    private static async Task WaitUntil(Func<Task<bool>> condition, string what)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            try { if (await condition()) return; }
            catch (ReplicationException) { /* not yet */ }
            if (sw.Elapsed > Bound) throw new TimeoutException($"Not within {Bound}: {what}");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task Kill_and_pause_leader_processes_under_concurrent_clients_without_losing_or_staling_anything()
    {
        using var procs = new NodeProcesses(Log);
        var ids = new Dictionary<int, int> { [1] = await procs.StartAsync(1, null) };
        ids[2] = await procs.StartAsync(2, joinSlot: 1);
        ids[3] = await procs.StartAsync(3, joinSlot: 2);
        Assert.Equal(new[] { 1, 2, 3 }, ids.Values.OrderBy(x => x));
        var slotOf = ids.ToDictionary(kv => kv.Value, kv => kv.Key);
        Log("three node processes ready");

        await using var admin = await ConnectAsync(procs.Endpoints);
        await WaitUntil(async () =>
        {
            await admin.WaitForLeadersAsync(null, OpTimeout, CancellationToken.None);
            return admin.GetShards().All(s => s.Voters.Count == 3 && s.Learners.Count == 0 && s.Leader != 0);
        }, "every shard has three voters and a leader");
        Log("every shard replicated on three nodes");
        var shardMap = ShardRangeMap.Even(admin.ShardCount);

        // ---- phase 1: concurrent clients; SIGKILL the leader of shard 0, measure failover, restart it ----
        using var stopClients = new CancellationTokenSource();
        var clients = Enumerable.Range(0, 3).Select(c => Task.Run(() => ClientLoopAsync(c, procs.Endpoints.ToArray(), stopClients.Token))).ToArray();
        await WaitUntil(() => Task.FromResult(_history.Count(o => o.Status == OpStatus.Ok) >= 60), "clients made progress");

        int victim = (await WithLeaderAsync(admin, 0)).Leader;
        string probeKey = Enumerable.Range(0, 1000).Select(i => $"probe-{i}").First(k => shardMap.ShardFor(k) == 0);
        await using var prober = await ConnectAsync(procs.Endpoints.Where(e => e != procs.EndpointOf(slotOf[victim])).Concat(new[] { procs.EndpointOf(slotOf[victim]) }));
        Log($"SIGKILL node {victim} (leader of shard 0), pid {procs.Pid(slotOf[victim])}");
        var killedAt = _clock.Elapsed;
        procs.Kill(slotOf[victim]);
        TimeSpan? failover = null;
        for (int i = 0; failover is null; i++)
        {
            Assert.True(_clock.Elapsed - killedAt < Bound, "no write succeeded after the kill");
            string value = $"after-kill-{i}";
            var r = await Record(98, new KvInput(KvOpKind.Put, probeKey, value),
                () => prober.WriteAsync(new[] { new KeyWrite(probeKey, value) }, WriteConcern.Majority, TimeSpan.FromSeconds(1), CancellationToken.None));
            if (r[0].Error is null) failover = _clock.Elapsed - killedAt;
        }
        Log($"FAILOVER between processes (SIGKILL of the shard leader -> first successful write to its shard): {failover.Value.TotalMilliseconds:0} ms");
        output.WriteLine($"FAILOVER_MS={failover.Value.TotalMilliseconds:0}");

        await WaitUntil(() => Task.FromResult(_history.Count(o => o.Status == OpStatus.Ok && o.Invoke > Ticks(killedAt)) >= 60), "clients progress without the killed node");
        Assert.Equal(ids[slotOf[victim]], await procs.StartAsync(slotOf[victim], joinSlot: null)); // same folder: same node
        Log($"node {victim} restarted from its folder");
        await WaitUntil(async () =>
        {
            var node = admin.GetNode(victim);
            var leaders = await admin.WaitForLeadersAsync(null, OpTimeout, CancellationToken.None);
            return node.State == NodeState.Running && node.LagEntries == 0 && leaders.All(s => s.Leader != 0);
        }, "the restarted node runs and has caught up");
        await WaitUntil(() => Task.FromResult(_history.Count(o => o.Status == OpStatus.Ok) >= 400), "clients made more progress");
        stopClients.Cancel();
        await Task.WhenAll(clients);

        // ---- phase 2: SIGSTOP the leader of shard 0 until another node leads it, write, SIGCONT, read through it ----
        var before = await WithLeaderAsync(admin, 0);
        int paused = before.Leader;
        string pausedEndpoint = procs.EndpointOf(slotOf[paused]);
        await using var others = await ConnectAsync(procs.Endpoints.Where(e => e != pausedEndpoint));
        var oldValue = await Record(0, new KvInput(KvOpKind.Put, probeKey, "before-pause"),
            () => others.WriteAsync(new[] { new KeyWrite(probeKey, "before-pause") }, WriteConcern.Majority, MustSucceed, CancellationToken.None));
        Log($"SIGSTOP node {paused} (leader of shard 0 in term {before.Term})");
        procs.Signal(slotOf[paused], "STOP");
        try
        {
            await WaitUntil(async () =>
            {
                await others.WaitForLeadersAsync(0, OpTimeout, CancellationToken.None);
                var now = others.GetShards()[0];
                return now.Leader != 0 && now.Leader != paused && now.Term > before.Term;
            }, "a new leader of shard 0 while the old one is paused");
            Log($"new leader of shard 0: node {others.GetShards()[0].Leader}");
            var put = await Record(0, new KvInput(KvOpKind.Put, probeKey, "during-pause"),
                () => others.WriteAsync(new[] { new KeyWrite(probeKey, "during-pause") }, WriteConcern.Majority, MustSucceed, CancellationToken.None));
            Assert.Null(put[0].Error);
        }
        finally
        {
            procs.Signal(slotOf[paused], "CONT");
            Log($"SIGCONT node {paused}");
        }
        // Straight after the resume, the deposed leader still believes it leads until it hears the new term:
        // a linearizable read through it must not return the value from before the pause.
        await using var viaPaused = await ConnectAsync(new[] { pausedEndpoint }, connectSeconds: 10); // a resumed process may answer slowly
        for (int i = 0; i < 20; i++)
        {
            var invoke = Ticks(_clock.Elapsed);
            try
            {
                var read = await viaPaused.GetAsync(probeKey, ReadConsistency.Linearizable, OpTimeout, CancellationToken.None);
                _history.Add(HistoryOp.Ok(Interlocked.Increment(ref _nextOp), 99, new KvInput(KvOpKind.Get, probeKey), invoke, Ticks(_clock.Elapsed),
                    new KvOutput(read is not null, read?.Value, read?.Version ?? 0)));
                Assert.Equal("during-pause", read?.Value);
            }
            catch (ReplicationException e)
            {
                Log($"read through the resumed node failed ({e.ErrorId}); no stale answer");
            }
        }

        // ---- final: every acknowledged write readable with its last acknowledged value; linearizable history ----
        await using var reader = await ConnectAsync(procs.Endpoints);
        await reader.WaitForLeadersAsync(null, Bound, CancellationToken.None);
        var ops = _history.ToArray();
        foreach (var key in ops.Where(o => o.Input.Kind == KvOpKind.Put).Select(o => o.Input.Key).Distinct())
        {
            var invoke = Ticks(_clock.Elapsed);
            var final = await reader.GetAsync(key, ReadConsistency.Linearizable, Bound, CancellationToken.None);
            _history.Add(HistoryOp.Ok(Interlocked.Increment(ref _nextOp), 100, new KvInput(KvOpKind.Get, key), invoke, Ticks(_clock.Elapsed),
                new KvOutput(final is not null, final?.Value, final?.Version ?? 0)));
            var puts = ops.Where(o => o.Input.Key == key && o.Input.Kind == KvOpKind.Put).ToArray();
            var lastAcked = puts.Where(o => o.Status == OpStatus.Ok).OrderBy(o => o.Return).LastOrDefault();
            if (lastAcked is null) continue;
            // The final value is the last acknowledged one, or one whose write overlapped it or came later (acknowledged or not).
            var allowed = puts.Where(o => o == lastAcked || (o.Status != OpStatus.Failed && (o.Status == OpStatus.Unknown || o.Return > lastAcked.Invoke)))
                .Select(o => o.Input.Value).ToHashSet();
            Assert.True(final is not null && allowed.Contains(final.Value),
                $"key {key}: read {final?.Value ?? "(absent)"}, last acknowledged {lastAcked.Input.Value}");
        }
        var history = _history.ToArray();
        int ok = history.Count(o => o.Status == OpStatus.Ok), unknown = history.Count(o => o.Status == OpStatus.Unknown);
        var verdict = LinearizabilityChecker.Check(history);
        Log($"history: {history.Length} operations ({ok} ok, {unknown} unknown); checker: {verdict.Outcome} in {verdict.Steps} steps {verdict.Detail}");
        Assert.NotEqual(CheckOutcome.NotLinearizable, verdict.Outcome);
        Assert.Null(oldValue[0].Error);
    }

    private long Ticks(TimeSpan t) => t.Ticks;

    /// <summary>One client: random puts (unique values) and linearizable gets on a few shared keys, each recorded.</summary>
    private async Task ClientLoopAsync(int client, string[] endpoints, CancellationToken stop)
    {
        var random = new Random(client * 7919 + 1);
        await using var cluster = await ConnectAsync(endpoints.Skip(client % endpoints.Length).Concat(endpoints.Take(client % endpoints.Length)));
        int n = 0;
        while (!stop.IsCancellationRequested)
        {
            string key = $"key-{random.Next(6)}";
            if (random.Next(2) == 0)
            {
                string value = $"c{client}-{n++}";
                await Record(client, new KvInput(KvOpKind.Put, key, value),
                    () => cluster.WriteAsync(new[] { new KeyWrite(key, value) }, WriteConcern.Majority, OpTimeout, CancellationToken.None));
            }
            else
            {
                var invoke = Ticks(_clock.Elapsed);
                try
                {
                    var read = await cluster.GetAsync(key, ReadConsistency.Linearizable, OpTimeout, CancellationToken.None);
                    _history.Add(HistoryOp.Ok(Interlocked.Increment(ref _nextOp), client, new KvInput(KvOpKind.Get, key), invoke, Ticks(_clock.Elapsed),
                        new KvOutput(read is not null, read?.Value, read?.Version ?? 0)));
                }
                catch (ReplicationException)
                {
                    _history.Add(HistoryOp.Failed(Interlocked.Increment(ref _nextOp), client, new KvInput(KvOpKind.Get, key), invoke, Ticks(_clock.Elapsed)));
                }
            }
        }
    }

    /// <summary>Runs one write and records it: Ok with its version, or Unknown (a timed-out or cut-off write may still apply).</summary>
    private async Task<IReadOnlyList<WriteResult>> Record(int client, KvInput input, Func<Task<IReadOnlyList<WriteResult>>> write)
    {
        var invoke = Ticks(_clock.Elapsed);
        IReadOnlyList<WriteResult> results;
        try
        {
            results = await write();
        }
        catch (ReplicationException e)
        {
            _history.Add(HistoryOp.Unknown(Interlocked.Increment(ref _nextOp), client, input, invoke));
            return new[] { new WriteResult(new KeyWrite(input.Key, input.Value), null, false, e) };
        }
        var r = results[0];
        var ret = Ticks(_clock.Elapsed);
        if (r.Error is null) _history.Add(HistoryOp.Ok(Interlocked.Increment(ref _nextOp), client, input, invoke, ret, new KvOutput(true, input.Value, r.Record!.Version)));
        else if (r.Error is VersionConflictException or InvalidKeyException) _history.Add(HistoryOp.Failed(Interlocked.Increment(ref _nextOp), client, input, invoke, ret));
        else _history.Add(HistoryOp.Unknown(Interlocked.Increment(ref _nextOp), client, input, invoke));
        return results;
    }
}
