// Write benchmarks for the embedded 3-node cluster (issue 2): sequential and concurrent durable
// writes (WriteConcern.Majority: acknowledged once a quorum fsynced the entry and the leader
// applied it), with throughput and latency percentiles. Every phase is bounded in operations and
// in time. Figures depend on the machine: the header prints what it ran on.
using System.Diagnostics;
using Replication.Engine.Cluster;

int sequential = ArgInt("--sequential", 2000);
int concurrent = ArgInt("--concurrent-ops", 8000);
int writers = ArgInt("--writers", 16);
int batched = ArgInt("--batched", 20000);
var phaseLimit = TimeSpan.FromSeconds(ArgInt("--phase-seconds", 30));
var throughput = new Dictionary<string, double>();

Console.WriteLine("Replication write benchmark: embedded cluster, 3 nodes, 4 shards, replication factor 3");
Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {Cpu()}, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}");
string path = Path.Combine(Path.GetTempPath(), "replication-bench-" + Guid.NewGuid().ToString("N")[..8]);
Console.WriteLine($"data: {path}");
await using var cluster = await EmbeddedCluster.StartAsync(new ClusterOptions { Name = "bench", Path = path, NodeCount = 3, ShardCount = 4 }, CancellationToken.None);
try
{
    await cluster.WaitForLeadersAsync(null, TimeSpan.FromSeconds(30), CancellationToken.None);
    throughput["sequential"] = await Phase("sequential, 1 writer, 1 key per write", 1, sequential, 1);
    throughput["concurrent"] = await Phase($"concurrent, {writers} writers, 1 key per write", writers, concurrent, 1);
    throughput["batched"] = await Phase("batched, 1 writer, 500 keys per call (as Set-ReplicationKey batches the pipeline)", 1, batched, 500);
}
finally
{
    await cluster.RemoveAsync(deleteData: true);
}

// The physical limit of the same disk (PhysicalLimits.cs), and the cluster's share of it.
string probe = Path.Combine(Path.GetTempPath(), "replication-bench-probe-" + Guid.NewGuid().ToString("N")[..8]);
Directory.CreateDirectory(probe);
try
{
    var probeLimit = TimeSpan.FromSeconds(Math.Min(5, phaseLimit.TotalSeconds));
    double fsyncs = PhysicalLimits.FsyncsPerSecond(probe, 20_000, probeLimit);
    double sqlite1 = PhysicalLimits.SqliteRowsPerSecond(probe, 1, 10_000, probeLimit);
    double sqlite1000 = PhysicalLimits.SqliteRowsPerSecond(probe, 1000, 500_000, probeLimit);
    Console.WriteLine();
    Console.WriteLine("physical limit of this disk (same temp folder)");
    Console.WriteLine($"  bare 4 KiB write + fsync     {fsyncs:N0} fsyncs/s ({1000 / fsyncs:0.000} ms each)");
    Console.WriteLine($"  raw SQLite, 1 row per commit {sqlite1:N0} rows/s (WAL, synchronous=FULL, random keys, WITHOUT ROWID)");
    Console.WriteLine($"  raw SQLite, 1000-row batches {sqlite1000:N0} rows/s");
    Console.WriteLine();
    Console.WriteLine("cluster durable writes against the physical limit (3 replicas, each fsyncs its own log on this one disk)");
    Console.WriteLine($"  sequential  {throughput["sequential"]:N0} writes/s = {throughput["sequential"] / fsyncs:P1} of the fsync rate, {throughput["sequential"] / sqlite1:P1} of raw 1-row SQLite commits");
    Console.WriteLine($"  concurrent  {throughput["concurrent"]:N0} writes/s = {throughput["concurrent"] / fsyncs:0.00}x the fsync rate (group commit), {throughput["concurrent"] / sqlite1:0.00}x raw 1-row SQLite commits");
    Console.WriteLine($"  batched     {throughput["batched"]:N0} keys/s = {throughput["batched"] / sqlite1000:P1} of raw SQLite in 1000-row batches");
}
finally
{
    Directory.Delete(probe, recursive: true);
}

async Task<double> Phase(string name, int writerCount, int totalKeys, int batch)
{
    var latencies = new List<double>();
    var gate = new object();
    int next = 0;
    long failures = 0;
    var stop = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, writerCount).Select(w => Task.Run(async () =>
    {
        var mine = new List<double>();
        while (stop.Elapsed < phaseLimit)
        {
            int start = Interlocked.Add(ref next, batch) - batch;
            if (start >= totalKeys) break;
            var writes = Enumerable.Range(start, Math.Min(batch, totalKeys - start))
                .Select(i => new KeyWrite($"bench:{name.Length}:{i:D8}", $"value-{i}-{new string('x', 64)}")).ToArray();
            long t0 = Stopwatch.GetTimestamp();
            var results = await cluster.WriteAsync(writes, WriteConcern.Majority, TimeSpan.FromSeconds(10), CancellationToken.None);
            mine.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            Interlocked.Add(ref failures, results.Count(r => r.Error is not null));
        }
        lock (gate) latencies.AddRange(mine);
    })));
    stop.Stop();
    int keys = Math.Min(next, totalKeys);
    latencies.Sort();
    Console.WriteLine();
    Console.WriteLine(name);
    Console.WriteLine($"  keys written     {keys:N0} in {stop.Elapsed.TotalSeconds:0.00} s ({failures} failed)");
    Console.WriteLine($"  throughput       {keys / stop.Elapsed.TotalSeconds:N0} keys/s, {latencies.Count / stop.Elapsed.TotalSeconds:N0} calls/s");
    Console.WriteLine($"  latency per call p50 {Pct(latencies, 0.50):0.000} ms, p99 {Pct(latencies, 0.99):0.000} ms, max {(latencies.Count > 0 ? latencies[^1] : 0):0.000} ms");
    return keys / stop.Elapsed.TotalSeconds;
}

static double Pct(List<double> sorted, double p) => sorted.Count == 0 ? 0 : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];

int ArgInt(string name, int fallback)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], out int v) ? v : fallback;
}

static string Cpu()
{
    try
    {
        var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"));
        return line is null ? "unknown CPU" : line.Split(':', 2)[1].Trim();
    }
    catch (IOException)
    {
        return "unknown CPU";
    }
}
