using System.Diagnostics;
using System.Text.Json;
using Replication.Engine.Transport;

/// <summary>
/// `Replication.Bench load --spec FILE`: the load generator, in its own process so that client CPU does not
/// compete inside a server process. Runs one round against one system (<see cref="LoadSpec"/>) and writes a
/// <see cref="LoadResult"/>. The shape is the same for every system: N clients, each one connection issuing
/// one request at a time (a put of a random key with a fixed-size value, or a linearizable get of a key
/// written earlier in the round). CPU of each server process is read from /proc around each phase.
/// Order: wait until the cluster formed; connect all clients at once (timed); cold writes (1 client, per
/// second); warm-up; writes at each client count; reads at each client count; a batched import (one client, batches in
/// flight as Set-ReplicationKey sends them); then the
/// clients close and the servers' idle CPU is measured. The secret comes from REPLICATION_CLUSTER_SECRET.
/// </summary>
internal sealed class LoadRole
{
    private const string Alphabet = "0123456789abcdefghijklmnopqrstuvwxyz";
    private readonly LoadSpec _spec;
    private readonly List<string> _written = new();
    private readonly object _writtenGate = new();
    private string[] _readable = [];

    private LoadRole(LoadSpec spec) => _spec = spec;

    public static async Task<int> RunAsync(string[] args)
    {
        int i = Array.IndexOf(args, "--spec");
        if (i < 0 || i + 1 >= args.Length)
        {
            Console.Error.WriteLine("usage: Replication.Bench load --spec <file.json> (secret in REPLICATION_CLUSTER_SECRET)");
            return 64;
        }
        var spec = JsonSerializer.Deserialize<LoadSpec>(File.ReadAllText(args[i + 1]), Json.Options)!;
        var result = await new LoadRole(spec).RunAsync();
        File.WriteAllText(spec.ResultPath, JsonSerializer.Serialize(result, Json.Options));
        Console.WriteLine("DONE");
        return 0;
    }

    private async Task<LoadResult> RunAsync()
    {
        var secret = ClusterSecret.FromString(Environment.GetEnvironmentVariable("REPLICATION_CLUSTER_SECRET") ?? "");
        using var bound = new CancellationTokenSource(TimeSpan.FromMinutes(5)); // no round may hang the bench
        var ct = bound.Token;
        var pids = _spec.ServerPids.ToList();
        string[] names = _spec.ServerNames;
        IKvTarget target = _spec.System switch
        {
            "etcd" => new EtcdTarget(_spec.Endpoints),
            "replication" => ReplicationTarget.Remote(_spec.Endpoints, secret),
            "embedded" => await ReplicationTarget.EmbeddedAsync(_spec.EmbeddedPath!, secret, ct),
            _ => throw new ArgumentException($"unknown system '{_spec.System}'"),
        };
        if (_spec.System == "embedded")
        {
            pids = [Environment.ProcessId];
            names = ["load+3 nodes"];
        }
        var phases = new List<PhaseResult>();
        string placement, leadersAfter;
        double connectMs;
        int maxClients = _spec.ClientCounts.Max();
        IKvClient[] clients;
        await using (target)
        {
            placement = await target.PrepareAsync(_spec.Spread, ct);
            Say($"{_spec.System}: {placement}");

            var watch = Stopwatch.StartNew();
            clients = await Task.WhenAll(Enumerable.Range(0, maxClients).Select(c => target.ConnectAsync(c, ct)));
            connectMs = watch.Elapsed.TotalMilliseconds;
            Say($"connected {maxClients} clients in {connectMs:N0} ms");
            try
            {
                // One state per client, and per import request in flight (their keys must differ): with --clients 1 the import's
                // second request had none (IndexOutOfRangeException, counted as failed writes).
                var states = Enumerable.Range(0, Math.Max(maxClients, _spec.ImportInFlight)).Select(c => new ClientState(_spec.Round * 1000 + c, _spec.ValueBytes)).ToArray();
                for (int s = 0; s < _spec.ColdSeconds; s++)
                    phases.Add(await PhaseAsync("cold", clients, states, 1, 1, Put, pids, ct));
                if (_spec.WarmupSeconds > 0)
                    phases.Add(await PhaseAsync("warmup", clients, states, Math.Min(16, maxClients), _spec.WarmupSeconds, Put, pids, ct));
                foreach (int n in _spec.ClientCounts)
                    phases.Add(await PhaseAsync("write", clients, states, n, _spec.PhaseSeconds, Put, pids, ct));
                lock (_writtenGate) _readable = _written.ToArray();
                foreach (int n in _spec.ClientCounts)
                    phases.Add(await PhaseAsync("read", clients, states, n, _spec.PhaseSeconds, Get, pids, ct));
                // One client (one pipeline) with ImportInFlight batches in flight, as Set-ReplicationKey sends them.
                var import = await PhaseAsync("import", Enumerable.Repeat(clients[0], _spec.ImportInFlight).ToArray(), states, _spec.ImportInFlight, _spec.ImportSeconds, Import, pids, ct);
                phases.Add(import with { Clients = 1 });
                leadersAfter = await target.LeadersAsync(ct);
                Say($"after the load: {leadersAfter}");
            }
            finally
            {
                await Task.WhenAll(clients.Select(c => c.DisposeAsync().AsTask()));
            }

            // Idle: no client connected (the target's own status connection is closed first, for the remote
            // systems), a second to settle, then every server's CPU over IdleSeconds.
            if (_spec.System != "embedded") await target.DisposeAsync();
            var loadEnded = Stopwatch.StartNew();
            async Task<(double Seconds, CpuUse[] Cpu)> IdleCpuAsync(string what)
            {
                var before = ProcStat.Read(pids);
                var watch = Stopwatch.StartNew();
                await Task.Delay(TimeSpan.FromSeconds(_spec.IdleSeconds), ct);
                var after = ProcStat.Read(pids);
                double seconds = watch.Elapsed.TotalSeconds;
                var cpu = after.Zip(before, (a, b) => CpuUse.From(a - b)).ToArray();
                Say($"{what} over {seconds:0.0} s: {string.Join(", ", cpu.Select((c, k) => $"{names.ElementAtOrDefault(k)} {c.Total / seconds:P1} of a core"))}");
                return (seconds, cpu);
            }
            await Task.Delay(1000, ct);
            var (idleSeconds, idle) = await IdleCpuAsync("idle");
            // Idle once the load's after-effects are over (quiescence, leader balancing, log compaction, the runtime's
            // own clean-up): the same measure again, starting SettleSeconds after the load ended.
            var settleFor = TimeSpan.FromSeconds(_spec.SettleSeconds) - loadEnded.Elapsed;
            if (settleFor > TimeSpan.Zero) await Task.Delay(settleFor, ct);
            var (settledSeconds, settled) = await IdleCpuAsync($"idle {_spec.SettleSeconds:0} s after the load,");
            return new LoadResult
            {
                System = _spec.System,
                Round = _spec.Round,
                Placement = placement,
                LeadersAfter = leadersAfter,
                ConnectMs = connectMs,
                ConnectClients = maxClients,
                ImportInFlight = _spec.ImportInFlight,
                ImportBatch = _spec.ImportBatch,
                Phases = phases,
                IdleSeconds = idleSeconds,
                IdleCpu = idle,
                SettleSeconds = _spec.SettleSeconds,
                SettledIdleSeconds = settledSeconds,
                SettledIdleCpu = settled,
                ServerNames = names,
            };
        }
    }

    private async Task<int> Put(IKvClient client, ClientState state, CancellationToken ct)
    {
        string key = state.NextKey(_spec.KeyBytes);
        await client.PutAsync(key, state.Value, ct);
        state.Written.Add(key);
        return 1;
    }

    private async Task<int> Get(IKvClient client, ClientState state, CancellationToken ct)
    {
        if (_readable.Length == 0) throw new InvalidOperationException("no key was written before the read phase");
        string key = _readable[state.Random.Next(_readable.Length)];
        if (!await client.GetAsync(key, ct)) throw new InvalidOperationException($"acknowledged key {key} not found");
        return 1;
    }

    private async Task<int> Import(IKvClient client, ClientState state, CancellationToken ct)
    {
        var batch = new KeyValuePair<string, string>[_spec.ImportBatch];
        for (int i = 0; i < batch.Length; i++) batch[i] = new(state.NextKey(_spec.KeyBytes), state.Value);
        int ok = await client.PutBatchAsync(batch, ct);
        if (ok < batch.Length) throw new PartialBatchException(ok, batch.Length);
        return ok;
    }

    /// <summary>
    /// Runs <paramref name="request"/> in a loop on the first <paramref name="clientCount"/> clients, each
    /// sequential, until <paramref name="seconds"/> passed or <see cref="LoadSpec.MaxOpsPerPhase"/> requests were
    /// issued (an import counts keys against <see cref="LoadSpec.MaxImportKeys"/>). A failed request is counted
    /// and the client goes on after a short pause (a failing system must not turn the loop into a spin).
    /// </summary>
    private async Task<PhaseResult> PhaseAsync(string kind, IKvClient[] clients, ClientState[] states, int clientCount, double seconds,
        Func<IKvClient, ClientState, CancellationToken, Task<int>> request, List<int> pids, CancellationToken ct)
    {
        long maxRequests = kind == "import" ? Math.Max(1, _spec.MaxImportKeys / _spec.ImportBatch) : _spec.MaxOpsPerPhase;
        var limit = TimeSpan.FromSeconds(seconds);
        long issued = 0, ops = 0, errors = 0;
        string? firstError = null;
        var latencies = new List<double>[clientCount];
        foreach (var s in states) s.Written.Clear();
        var serverBefore = ProcStat.Read(pids);
        var selfBefore = ProcStat.Read(Environment.ProcessId);
        double machineBefore = ProcStat.ReadMachineBusy();
        var watch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clientCount).Select(c => Task.Run(async () =>
        {
            var mine = new List<double>(4096);
            while (watch.Elapsed < limit && Interlocked.Increment(ref issued) <= maxRequests)
            {
                long t0 = Stopwatch.GetTimestamp();
                try
                {
                    int n = await request(clients[c], states[c], ct);
                    mine.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                    Interlocked.Add(ref ops, n);
                }
                catch (Exception e) when (!ct.IsCancellationRequested)
                {
                    if (e is PartialBatchException p)
                    {
                        Interlocked.Add(ref ops, p.Acknowledged);
                        Interlocked.Add(ref errors, p.Sent - p.Acknowledged);
                    }
                    else Interlocked.Increment(ref errors);
                    Interlocked.CompareExchange(ref firstError, $"{e.GetType().Name}: {e.Message}{Where(e)}", null);
                    await Task.Delay(10, ct);
                }
            }
            latencies[c] = mine;
        }, ct)));
        watch.Stop();
        var serverAfter = ProcStat.Read(pids);
        var selfAfter = ProcStat.Read(Environment.ProcessId);
        double machineBusy = ProcStat.ReadMachineBusy() - machineBefore;
        if (kind == "write")
            lock (_writtenGate)
                foreach (var s in states.Take(clientCount))
                    if (_written.Count < 1_000_000) _written.AddRange(s.Written);
        var all = latencies.SelectMany(l => l).ToArray();
        Array.Sort(all);
        var result = new PhaseResult
        {
            Kind = kind,
            Clients = clientCount,
            Ops = ops,
            Errors = errors,
            FirstError = firstError,
            Seconds = watch.Elapsed.TotalSeconds,
            P50 = Percentile(all, 0.50),
            P99 = Percentile(all, 0.99),
            P999 = Percentile(all, 0.999),
            Max = all.Length > 0 ? all[^1] : 0,
            ServerCpu = serverAfter.Zip(serverBefore, (a, b) => CpuUse.From(a - b)).ToArray(),
            ClientCpu = CpuUse.From(selfAfter - selfBefore),
        };
        // The embedded servers are this process: count it once.
        double known = (_spec.System == "embedded" ? 0 : result.ServerCpu.Sum(u => u.Total)) + result.ClientCpu.Total;
        result = result with { OtherCpu = Math.Round(Math.Max(0, machineBusy - known), 3) };
        Say($"{kind,-6} {clientCount,2} clients: {result.OpsPerSecond,9:N0} {(kind == "import" ? "keys" : "ops")}/s, p50 {result.P50:0.00} ms, p99 {result.P99:0.00} ms, p99.9 {result.P999:0.00} ms"
            + $", server CPU {string.Join("/", result.ServerCpu.Select(u => u.Total.ToString("0.00")))} s, load CPU {result.ClientCpu.Total:0.00} s, other work {result.OtherShare:P0} of the machine"
            + (errors > 0 ? $", {errors} errors (first: {firstError})" : ""));
        return result;
    }

    /// <summary>The value at quantile <paramref name="q"/> of sorted samples (nearest rank); 0 for none.</summary>
    private static double Percentile(double[] sorted, double q) =>
        sorted.Length == 0 ? 0 : Math.Round(sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)], 3);

    private static void Say(string line) => Console.WriteLine(line);

    /// <summary>Per client: its own random sequence, its value, and the keys it wrote in the current phase. Used by one task at a time.</summary>
    /// <summary>Where an unexpected exception (not one of the engine's own errors, which say what happened) was thrown: its
    /// innermost frame, so a bug met under load can be found from the bench's output.</summary>
    private static string Where(Exception e) =>
        e is Replication.Engine.ReplicationException or PartialBatchException || e.StackTrace is not { } trace ? ""
            : " " + trace.Split('\n', StringSplitOptions.RemoveEmptyEntries)[0].Trim();

    private sealed class ClientState(int seed, int valueBytes)
    {
        public Random Random { get; } = new(seed);
        public string Value { get; } = RandomText(new Random(~seed), valueBytes);
        public List<string> Written { get; } = new();

        public string NextKey(int length) => RandomText(Random, length);

        private static string RandomText(Random random, int length) =>
            string.Create(length, random, (span, r) => { for (int i = 0; i < span.Length; i++) span[i] = Alphabet[r.Next(Alphabet.Length)]; });
    }

    private sealed class PartialBatchException(int acknowledged, int sent)
        : Exception($"{sent - acknowledged} of {sent} writes in a batch were not acknowledged")
    {
        public int Acknowledged { get; } = acknowledged;
        public int Sent { get; } = sent;
    }
}
