using System.Diagnostics;
using Replication.Engine.Client;
using Replication.Engine.Ring;
using Replication.Engine.Transport;
using Xunit;
using Xunit.Abstractions;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// Clients ride through a failover (issue 10, item 7), between real processes: three node processes, two clients
/// connected to each, writing and reading shard 0's keys, while shard 0's leader process (read right before) is
/// paused (SIGSTOP). The requests' timeout is longer than the test's bound, so only the client's failover can release a
/// request that waits on the paused leader: every client, those connected to the paused process itself included, must
/// get an acknowledged write it issued during the pause, while the old leader is still paused and after another node
/// leads shard 0 in a newer term (the pause lasts until then, with a bound). Every request ends with a value or with one
/// of the ErrorIds the README documents for a failover (never ServerError), and the whole history, checked with the
/// linearizability checker, must be linearizable. How long after the pause each client had its write acknowledged is
/// logged (a figure, not an assertion: speed is measured by the bench).
/// </summary>
[Trait("Category", "Process")]
public sealed class ProcessFailoverClientTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(45);
    private const int Clients = 6;
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    private void Log(string line)
    {
        try { output.WriteLine($"{_clock.Elapsed.TotalSeconds,7:0.000} {line}"); } catch (InvalidOperationException) { }
    }

    private static async Task<ClusterClient> ConnectAsync(IEnumerable<string> endpoints) =>
        await ClusterClient.ConnectAsync(endpoints.ToArray(), ClusterSecret.FromString(NodeProcesses.Secret),
            options: new ClusterClientOptions { ConnectTimeout = TimeSpan.FromSeconds(2) });

    private static Task WaitUntil(Func<Task<bool>> condition, string what) => ClusterFixture.EventuallyAsync(condition, what, Bound);

    [Fact]
    public async Task Every_client_gets_acknowledged_writes_while_the_leader_process_is_paused()
    {
        using var procs = new NodeProcesses(Log);
        var ids = new Dictionary<int, int> { [1] = await procs.StartAsync(1, null) };
        ids[2] = await procs.StartAsync(2, joinSlot: 1);
        ids[3] = await procs.StartAsync(3, joinSlot: 2);
        var slotOf = ids.ToDictionary(kv => kv.Value, kv => kv.Key);

        await using var admin = await ConnectAsync(procs.Endpoints);
        await WaitUntil(async () =>
        {
            await admin.WaitForLeadersAsync(null, RideThroughClients.OpTimeout, CancellationToken.None);
            return admin.GetShards().All(s => s.Voters.Count == 3 && s.Learners.Count == 0 && s.Leader != 0);
        }, "every shard has three voters and a leader");
        var map = ShardRangeMap.Even(admin.ShardCount);
        var keys = Enumerable.Range(0, 1000).Select(i => $"k{i}").Where(k => map.ShardFor(k) == 0).Take(6).ToArray();
        var endpoints = procs.Endpoints.ToArray();

        var clients = new RideThroughClients(endpoint => ConnectAsync(new[] { endpoint }), Log, _clock);
        using var stop = new CancellationTokenSource();
        var loops = Enumerable.Range(0, Clients).Select(c => clients.RunAsync(c, endpoints[c % endpoints.Length], keys, stop.Token)).ToArray();
        await WaitUntil(() => Task.FromResult(Enumerable.Range(0, Clients).All(c => clients.AcknowledgedSince(c, TimeSpan.Zero))), "every client had a write acknowledged");

        // Shard 0's leader now (leaderships move: balancing, elections under load).
        await admin.WaitForLeadersAsync(0, RideThroughClients.OpTimeout, CancellationToken.None);
        var before = admin.GetShards()[0];
        int paused = before.Leader;
        string pausedEndpoint = procs.EndpointOf(slotOf[paused]);
        var healthy = endpoints.Where(e => e != pausedEndpoint).ToArray();
        var onPaused = Enumerable.Range(0, Clients).Where(c => endpoints[c % endpoints.Length] == pausedEndpoint).ToArray();
        await using var watcher = await ConnectAsync(healthy);
        Log($"shard 0 led by node {paused} in term {before.Term}; clients {string.Join(", ", onPaused)} are connected to it");

        var pausedAt = clients.Now;
        Log($"SIGSTOP node {paused}");
        procs.Signal(slotOf[paused], "STOP");
        try
        {
            // The pause lasts until another node leads shard 0 in a newer term and every client, those on the paused node
            // included, has had a write it issued after the pause began acknowledged (bounded): a client whose request waits
            // on the paused leader for good, or goes back to it, fails this.
            await WaitUntil(() =>
            {
                var now = watcher.GetShards()[0];
                bool failedOver = now.Leader != 0 && now.Leader != paused && now.Term > before.Term;
                return Task.FromResult(failedOver && Enumerable.Range(0, Clients).All(c => clients.AcknowledgedSince(c, pausedAt)));
            }, "a new leader of shard 0, and every client had a write issued during the pause acknowledged while the old leader was still paused");
            Log($"first acknowledged write issued after the pause began, per client (ms after it began): {clients.FirstAcknowledgedAfter(pausedAt, Enumerable.Range(0, Clients))}");
        }
        finally
        {
            procs.Signal(slotOf[paused], "CONT");
            Log($"SIGCONT node {paused}");
        }
        var resumedAt = clients.Now;
        await WaitUntil(() => Task.FromResult(clients.OkSince(resumedAt) >= 20), "clients progress after the resume");
        stop.Cancel();
        await Task.WhenAll(loops);

        await using var reader = await ConnectAsync(healthy);
        await clients.CheckAsync(reader, keys, Bound);
    }
}
