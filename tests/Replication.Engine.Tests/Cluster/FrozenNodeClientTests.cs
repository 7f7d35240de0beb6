using Replication.Engine.Client;
using Replication.Engine.Cluster;
using Replication.Engine.Raft;
using Replication.Engine.Ring;
using Xunit;
using Xunit.Abstractions;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// Clients ride through a leader whose loop is frozen while its process and transport run (issue 10, item 7;
/// NodeHost.Freeze, what a stalled node looks like: it accepts connections and answers status, but no request that
/// needs its Raft loop is ever served). Three embedded nodes, one client connected to each, writing and reading shard
/// 0's keys; shard 0's leader is frozen until another node leads shard 0 in a newer term and every client, the one
/// connected to the frozen node included, has had a write it issued after the freeze acknowledged (bounded). The
/// requests' timeout is longer than the bound, so only the client's failover can release a request that waits on the
/// frozen node. Every request ends with a value or a documented failover ErrorId, and the history, checked with the
/// linearizability checker, must be linearizable.
/// </summary>
public sealed class FrozenNodeClientTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(45);

    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();

    private void Log(string line)
    {
        try { output.WriteLine($"{_clock.Elapsed.TotalSeconds,7:0.000} {line}"); } catch (InvalidOperationException) { }
    }

    /// <summary>The node whose own replica leads <paramref name="shard"/> in the highest term (0: none), from the nodes' published status.</summary>
    private static (int Leader, long Term) LeaderNow(EmbeddedCluster cluster, int shard, int except = 0)
    {
        (int Leader, long Term) best = (0, -1);
        foreach (int id in cluster.NodeIds.Where(n => n != except))
            if (cluster.Node(id)?.Host.Status.TryGetValue(shard, out var st) == true && st.Role == RaftRole.Leader && st.Term > best.Term)
                best = (id, st.Term);
        return best;
    }

    [Fact]
    public async Task Every_client_gets_acknowledged_writes_while_the_leaders_loop_is_frozen()
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 2);
        var cluster = f.Cluster;
        var map = ShardRangeMap.Even(cluster.ShardCount);
        var keys = Enumerable.Range(0, 1000).Select(i => $"k{i}").Where(k => map.ShardFor(k) == 0).Take(6).ToArray();
        var endpoints = cluster.NodeIds.ToDictionary(id => id, id => cluster.Node(id)!.Endpoint);

        var clients = new RideThroughClients(endpoint => ClusterClient.ConnectAsync(new[] { endpoint }, cluster.ClientSecurity), Log, _clock);
        var ids = cluster.NodeIds.ToArray();
        using var stop = new CancellationTokenSource();
        var loops = ids.Select((id, c) => clients.RunAsync(c, endpoints[id], keys, stop.Token)).ToArray();
        await ClusterFixture.EventuallyAsync(() => Task.FromResult(Enumerable.Range(0, ids.Length).All(c => clients.AcknowledgedSince(c, TimeSpan.Zero))),
            "every client had a write acknowledged", Bound);

        var before = (Leader: 0, Term: -1L);
        await ClusterFixture.EventuallyAsync(() => Task.FromResult((before = LeaderNow(cluster, 0)).Leader != 0), "shard 0 has a leader", Bound);
        var host = cluster.Node(before.Leader)!.Host;
        var frozenAt = clients.Now;
        Log($"freezing node {before.Leader}, leader of shard 0 in term {before.Term}; client {Array.IndexOf(ids, before.Leader)} is connected to it");
        host.Freeze();
        try
        {
            await ClusterFixture.EventuallyAsync(() =>
            {
                var now = LeaderNow(cluster, 0, except: before.Leader);
                bool failedOver = now.Leader != 0 && now.Term > before.Term;
                return Task.FromResult(failedOver && Enumerable.Range(0, ids.Length).All(c => clients.AcknowledgedSince(c, frozenAt)));
            }, "a new leader of shard 0, and every client had a write issued after the freeze acknowledged while the old leader's loop was frozen", Bound);
            Log($"first acknowledged write issued after the freeze, per client (ms after it): {clients.FirstAcknowledgedAfter(frozenAt, Enumerable.Range(0, ids.Length))}");
        }
        finally { host.Thaw(); }
        var thawedAt = clients.Now;
        await ClusterFixture.EventuallyAsync(() => Task.FromResult(clients.OkSince(thawedAt) >= 20), "clients progress after the thaw", Bound);
        stop.Cancel();
        await Task.WhenAll(loops);
        await clients.CheckAsync(cluster, keys, Bound);
    }
}
