using System.Diagnostics;
using Replication.Engine.Client;
using Replication.Engine.Ring;
using Replication.Engine.Transport;
using Xunit;
using Xunit.Abstractions;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// Clients ride through a failover (issue 10, item 7), between real processes: three node processes, two clients
/// connected to each, writing and reading keys of two shards, while the process leading both (shard 0's leader, given a
/// second shard by a switchover when it leads only one) is paused (SIGSTOP). The requests' timeout, and the clients' connect timeout, are
/// longer than the test's bound, so only the client's failover can release a request that waits on the paused leader,
/// or a dial to it (a paused process accepts the TCP connection and completes no handshake: a client that gave up a
/// write on it once dialled it again for its other shard's key, before it avoided a silent node). Every client, those
/// connected to the paused process itself included, must get an acknowledged write it issued during the pause, while the
/// old leader is still paused and after other nodes lead both shards in newer terms (the pause lasts until then, with a bound). Every request ends with a value or with one
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
            options: new ClusterClientOptions { ConnectTimeout = RideThroughClients.OpTimeout });

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
        // The process to pause: shard 0's leader, made to lead a second shard too (one it leads already, or shard 1; never
        // more than ceil(4/3) = 2, so the balancer leaves it so).
        int paused = admin.GetShards()[0].Leader;
        int second = admin.GetShards().Where(s => s.Id != 0 && s.Leader == paused).Select(s => s.Id).DefaultIfEmpty(1).First();
        var keys = Enumerable.Range(0, 1000).Select(i => $"k{i}").Where(k => map.ShardFor(k) == 0).Take(3)
            .Concat(Enumerable.Range(0, 1000).Select(i => $"k{i}").Where(k => map.ShardFor(k) == second).Take(3)).ToArray();
        var endpoints = procs.Endpoints.ToArray();

        var clients = new RideThroughClients(endpoint => ConnectAsync(new[] { endpoint }), Log, _clock);
        using var stop = new CancellationTokenSource();
        var loops = Enumerable.Range(0, Clients).Select(c => clients.RunAsync(c, endpoints[c % endpoints.Length], keys, stop.Token)).ToArray();
        await WaitUntil(() => Task.FromResult(Enumerable.Range(0, Clients).All(c => clients.AcknowledgedSince(c, TimeSpan.Zero))), "every client had a write acknowledged");

        // Both shards led by that process right before the pause (leaderships move: balancing, elections under load; a
        // switchover puts them back).
        await WaitUntil(async () =>
        {
            await admin.WaitForLeadersAsync(null, RideThroughClients.OpTimeout, CancellationToken.None);
            foreach (int shard in new[] { 0, second }.Where(s => admin.GetShards()[s].Leader != paused))
                await admin.FailoverAsync(shard, paused, RideThroughClients.OpTimeout, CancellationToken.None);
            await admin.WaitForLeadersAsync(null, RideThroughClients.OpTimeout, CancellationToken.None);
            return admin.GetShards()[0].Leader == paused && admin.GetShards()[second].Leader == paused;
        }, $"node {paused} leads shards 0 and {second}");
        var before = admin.GetShards()[0];
        var before1 = admin.GetShards()[second];
        string pausedEndpoint = procs.EndpointOf(slotOf[paused]);
        var healthy = endpoints.Where(e => e != pausedEndpoint).ToArray();
        var onPaused = Enumerable.Range(0, Clients).Where(c => endpoints[c % endpoints.Length] == pausedEndpoint).ToArray();
        await using var watcher = await ConnectAsync(healthy);
        Log($"shards 0 and {second} led by node {paused} in terms {before.Term} and {before1.Term}; clients {string.Join(", ", onPaused)} are connected to it");

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
                var now1 = watcher.GetShards()[second];
                bool failedOver = now.Leader != 0 && now.Leader != paused && now.Term > before.Term
                    && now1.Leader != 0 && now1.Leader != paused && now1.Term > before1.Term;
                return Task.FromResult(failedOver && Enumerable.Range(0, Clients).All(c => clients.AcknowledgedSince(c, pausedAt)));
            }, $"new leaders of shards 0 and {second}, and every client had a write issued during the pause acknowledged while the old leader was still paused");
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
