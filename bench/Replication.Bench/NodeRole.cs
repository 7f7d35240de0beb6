using System.Runtime.InteropServices;
using Replication.Engine;
using Replication.Engine.Cluster;
using Replication.Engine.Security;
using Replication.Engine.Transport;

/// <summary>
/// `Replication.Bench node --path DIR --listen 127.0.0.1:PORT [--join 127.0.0.1:PORT] [--election-ticks N] [--shards N]
/// [--snapshot-entries N] [--snapshot-catch-up N] [--snapshot-chunk-bytes N] [--store-layout node|shard]`: one ClusterNode in
/// this process, as Start-ReplicationNode -Wait runs it (the same ClusterNode.StartAsync, the shared-secret
/// mode, default shard count and replication factor), without pwsh's start-up. The secret comes from
/// REPLICATION_CLUSTER_SECRET. Prints "READY &lt;node id&gt;" once the node listens (and, for a joiner, has
/// joined), then runs until SIGTERM/SIGINT or until its stdin closes (the bench went away). --election-ticks
/// overrides NodeOptions.ElectionTicks (a diagnostic: does a longer election timeout change the figures?).
/// Exit codes: 0 after a clean stop, 2 for a start-up error, 64 for bad arguments.
/// </summary>
internal static class NodeRole
{
    public static async Task<int> RunAsync(string[] args)
    {
        string? Arg(string name)
        {
            int i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        }

        var secret = Environment.GetEnvironmentVariable("REPLICATION_CLUSTER_SECRET");
        if (string.IsNullOrEmpty(secret) || Arg("--path") is not { } path || Arg("--listen") is not { } listen)
        {
            Console.Error.WriteLine("usage: Replication.Bench node --path <dir> --listen <host:port> [--join <host:port>] (secret in REPLICATION_CLUSTER_SECRET)");
            return 64;
        }
        var output = TextWriter.Synchronized(Console.Out);
        var defaults = new NodeOptions { Path = path, Listen = listen, Security = TransportSecurity.SharedSecret(ClusterSecret.FromString(secret)) };
        int electionTicks = Arg("--election-ticks") is { } ticks ? int.Parse(ticks) : defaults.ElectionTicks;
        ClusterNode node;
        try
        {
            node = await ClusterNode.StartAsync(defaults with
            {
                Join = Arg("--join"),
                Name = "bench",
                ElectionTicks = electionTicks,
                // The ring scenario (RingScenario.cs): more shards, and a log compacted early so a move copies by snapshot.
                ShardCount = Arg("--shards") is { } shards ? int.Parse(shards) : defaults.ShardCount,
                SnapshotEntries = Arg("--snapshot-entries") is { } entries ? int.Parse(entries) : defaults.SnapshotEntries,
                SnapshotCatchUpEntries = Arg("--snapshot-catch-up") is { } kept ? int.Parse(kept) : defaults.SnapshotCatchUpEntries,
                SnapshotChunkBytes = Arg("--snapshot-chunk-bytes") is { } chunk ? int.Parse(chunk) : defaults.SnapshotChunkBytes,
                StoreLayout = Arg("--store-layout") switch
                {
                    null => defaults.StoreLayout,
                    "node" => Replication.Engine.Storage.StoreLayout.FilePerNode,
                    "shard" => Replication.Engine.Storage.StoreLayout.FilePerShard,
                    var other => throw new ArgumentException($"--store-layout takes node or shard, not '{other}'."),
                },
                Log = m => output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {m}"),
            });
        }
        catch (ReplicationException e)
        {
            Console.Error.WriteLine($"{e.ErrorId}: {e.Message}");
            return 2;
        }
        output.WriteLine($"READY {node.NodeId}");
        output.Flush();
        var stop = new TaskCompletionSource();
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.TrySetResult(); });
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.TrySetResult(); });
        _ = Task.Run(() => { while (Console.In.ReadLine() is not null) { } stop.TrySetResult(); });
        await Task.WhenAny(stop.Task, node.Stopped);
        await node.StopAsync(kill: false);
        output.WriteLine("STOPPED");
        return 0;
    }
}
