// Runs one node of a multi-process cluster until SIGTERM, Ctrl+C, a closed stdin, or a remote
// Stop-ReplicationNode; exactly what Start-ReplicationNode -Wait does, without pwsh's start-up time.
// Usage: Replication.NodeProcess --path <dir> --listen <host:port> [--join <host:port>] [--certificates <dir>]
//        [--name <cluster>] [--shards N] [--rf N] (founding only) [--rebuild] (discard the stores, rebuild from peers)
//        [--role Voter|Learner] [--zone <label>] (joining only: what the node registers with)
// The secret comes from the environment (REPLICATION_CLUSTER_SECRET), never from the command line.
// Prints "READY <node id> <cluster id>" once the node listens and holds its place in the metadata group (as
// Start-ReplicationNode returns), then node events; exit code 0 after a clean stop, 2 for a start-up error (its
// ErrorId on stderr).
// Test control on stdin, one command per line: "cutoff 1,2" drops every Raft message to and from nodes 1 and 2 at this
// node (the fault drill's partition, TcpTransport.Faults.cs; status reports and client requests still flow), "cutoff"
// alone heals it; answered by a "CUTOFF [1,2]" line. Closing stdin stops the node.
using System.Runtime.InteropServices;
using Replication.Engine;
using Replication.Engine.Cluster;
using Replication.Engine.Transport;

string? Arg(string name)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}

var secret = Environment.GetEnvironmentVariable("REPLICATION_CLUSTER_SECRET");
if (string.IsNullOrEmpty(secret) || Arg("--path") is not { } path || Arg("--listen") is not { } listen)
{
    Console.Error.WriteLine("usage: Replication.NodeProcess --path <dir> --listen <host:port> [--join <host:port>] (secret in REPLICATION_CLUSTER_SECRET)");
    return 64;
}
var output = TextWriter.Synchronized(Console.Out);
ClusterNode node;
try
{
    node = await ClusterNode.StartAsync(new NodeOptions
    {
        Path = path,
        Listen = listen,
        Join = Arg("--join"),
        Role = Arg("--role") is { } role ? Enum.Parse<NodeRole>(role, ignoreCase: true) : NodeRole.Voter,
        Zone = Arg("--zone"),
        Security = Arg("--certificates") is { } certificates
            ? Replication.Engine.Security.TransportSecurity.Tls(certificates, Replication.Engine.Security.CertificateRole.Node)
            : Replication.Engine.Security.TransportSecurity.SharedSecret(ClusterSecret.FromString(secret)),
        Name = Arg("--name") ?? "replication",
        ShardCount = Arg("--shards") is { } shards ? int.Parse(shards) : ClusterOptions.DefaultShardCount,
        ReplicationFactor = Arg("--rf") is { } rf ? int.Parse(rf) : ClusterOptions.DefaultReplicationFactor,
        DiscardStores = args.Contains("--rebuild"),
        StoreLayout = Arg("--store-layout") is { } layout ? Enum.Parse<Replication.Engine.Storage.StoreLayout>(layout, ignoreCase: true) : Replication.Engine.Storage.StoreLayout.FilePerNode,
        Log = m => output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {m}"),
    });
}
catch (ReplicationException e)
{
    Console.Error.WriteLine($"{e.ErrorId}: {e.Message}");
    return 2;
}
if (await node.WaitForMetadataPlaceAsync(TimeSpan.FromSeconds(30), CancellationToken.None) is { } lacking)
    output.WriteLine($"WARNING {lacking}");
output.WriteLine($"READY {node.NodeId} {node.Id}");
output.Flush();
var stop = new TaskCompletionSource();
using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.TrySetResult(); });
using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.TrySetResult(); });
_ = Task.Run(() =>
{
    while (Console.In.ReadLine() is { } line)
    {
        if (!line.StartsWith("cutoff", StringComparison.Ordinal)) continue;
        var peers = line["cutoff".Length..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray();
        node.Host.CutOff(peers);
        output.WriteLine($"CUTOFF [{string.Join(',', peers)}]");
        output.Flush();
    }
    stop.TrySetResult(); // the parent went away
});
await Task.WhenAny(stop.Task, node.Stopped);
await node.StopAsync(kill: false);
output.WriteLine("STOPPED");
return 0;
