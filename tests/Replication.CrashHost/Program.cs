// Crash host: starts (or reopens) an embedded 3-node cluster in the folder given, then runs W
// writers, each writing its own keys sequentially, and prints one line per acknowledged write:
//   ACK <key> <value>
// The value is "r<round>:w<writer>:i<sequence>", so the parent can order every write of a key.
// A line is printed only AFTER the engine acknowledged the write (WriteConcern.Majority), so every
// ACK line is a promise the parent can check after killing this process at any moment.
// Usage: Replication.CrashHost <folder> <round> <seed> [writers=4] [maxWritesPerWriter=5000] [snapshotEntries=10000]
// (a small snapshotEntries makes the nodes compact their logs often, so kills land around compactions)
// Bounded: each writer stops after maxWritesPerWriter writes or 60 s; then the process exits 0.
using System.Diagnostics;
using Replication.Engine.Cluster;

if (args.Length < 3)
{
    Console.Error.WriteLine("usage: Replication.CrashHost <folder> <round> <seed> [writers] [maxWritesPerWriter]");
    return 2;
}
string folder = args[0];
int round = int.Parse(args[1]);
int seed = int.Parse(args[2]);
int writers = args.Length > 3 ? int.Parse(args[3]) : 4;
int maxWrites = args.Length > 4 ? int.Parse(args[4]) : 5000;
int snapshotEntries = args.Length > 5 ? int.Parse(args[5]) : 10_000;
var limit = TimeSpan.FromSeconds(60);

await using var cluster = await EmbeddedCluster.StartAsync(
    new ClusterOptions
    {
        Name = "crash", Path = folder, NodeCount = 3, ShardCount = 2, Seed = seed + round,
        SnapshotEntries = snapshotEntries, SnapshotCatchUpEntries = Math.Min(1_000, snapshotEntries / 2),
    }, CancellationToken.None);
await cluster.WaitForLeadersAsync(null, TimeSpan.FromSeconds(30), CancellationToken.None);
var output = Console.Out;
var gate = new object();
lock (gate) output.WriteLine("READY");
output.Flush();

var watch = Stopwatch.StartNew();
await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
{
    for (int i = 0; i < maxWrites && watch.Elapsed < limit; i++)
    {
        string key = $"w{w}:k{i % 16}";
        string value = $"r{round}:w{w}:i{i}";
        var result = (await cluster.WriteAsync(new[] { new KeyWrite(key, value) }, WriteConcern.Majority, TimeSpan.FromSeconds(5), CancellationToken.None))[0];
        if (result.Error is not null) continue;
        lock (gate)
        {
            output.WriteLine($"ACK {key} {value}");
            output.Flush();
        }
    }
})));
lock (gate) output.WriteLine("DONE");
return 0;
