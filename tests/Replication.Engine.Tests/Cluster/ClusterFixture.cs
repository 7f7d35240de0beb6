using Replication.Engine.Cluster;
using Xunit;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// Starts an embedded cluster in a fresh temp folder for one test and removes it (and the folder)
/// afterwards. Real threads, sockets and SQLite: waits are conditions with a bound, never sleeps.
/// </summary>
internal sealed class ClusterFixture : IAsyncDisposable
{
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    private ClusterFixture(string path, EmbeddedCluster cluster)
    {
        Path = path;
        Cluster = cluster;
    }

    public string Path { get; }
    public EmbeddedCluster Cluster { get; private set; }

    public static async Task<ClusterFixture> StartAsync(int nodes = 3, int shards = 2, string? path = null, Func<ClusterOptions, ClusterOptions>? configure = null)
    {
        path ??= System.IO.Path.Combine(System.IO.Path.GetTempPath(), "repl-test-" + Guid.NewGuid().ToString("N")[..10]);
        var options = Options(path, nodes, shards);
        var cluster = await EmbeddedCluster.StartAsync(configure is null ? options : configure(options), CancellationToken.None);
        await cluster.WaitForLeadersAsync(null, Bound, CancellationToken.None);
        return new ClusterFixture(path, cluster);
    }

    public static ClusterOptions Options(string path, int? nodes = 3, int? shards = 2) =>
        new() { Name = "test", Path = path, NodeCount = nodes, ShardCount = shards, Seed = 42, Log = DebugLog };

    /// <summary>Node events go to the file named by REPLICATION_TEST_LOG, when set (for debugging a failing test).</summary>
    internal static readonly Action<string>? DebugLog = Environment.GetEnvironmentVariable("REPLICATION_TEST_LOG") is { Length: > 0 } file
        ? m => { lock (file) File.AppendAllText(file, $"{DateTime.UtcNow:HH:mm:ss.fff} {m}\n"); }
        : null;

    /// <summary>Stops the cluster (keeping its files) and starts it again from the same folder.</summary>
    public async Task ReopenAsync()
    {
        await Cluster.RemoveAsync(deleteData: false);
        Cluster = await EmbeddedCluster.StartAsync(Options(Path, null, null), CancellationToken.None);
        await Cluster.WaitForLeadersAsync(null, Bound, CancellationToken.None);
    }

    public async Task<ReplicationKey> PutAsync(string key, string value, long? expected = null)
    {
        var r = (await Cluster.WriteAsync(new[] { new KeyWrite(key, value, expected) }, WriteConcern.Majority, Bound, CancellationToken.None))[0];
        if (r.Error is not null) throw r.Error;
        return r.Record!;
    }

    /// <summary>Polls an asynchronous <paramref name="condition"/> (every 20 ms) until it holds, failing after <paramref name="bound"/>;
    /// a ReplicationException from the condition counts as "not yet" (a node process restarting, a leader change).</summary>
    public static async Task EventuallyAsync(Func<Task<bool>> condition, string what, TimeSpan bound)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            try { if (await condition()) return; }
            catch (ReplicationException) { /* not yet */ }
            if (sw.Elapsed > bound) throw new TimeoutException($"Not within {bound}: {what}");
            await Task.Delay(20);
        }
    }

    /// <summary>Waits until <paramref name="condition"/> holds, failing the test after <paramref name="bound"/> (default <see cref="Bound"/>).</summary>
    public static void Eventually(Func<bool> condition, string what, TimeSpan? bound = null)
    {
        var limit = bound ?? Bound;
        if (!SpinWait.SpinUntil(condition, limit)) throw new Xunit.Sdk.XunitException($"Timed out after {limit.TotalSeconds} s waiting for: {what}");
    }

    /// <summary>The current leader of <paramref name="shard"/>. A leader can step down for a moment on a
    /// loaded machine (check-quorum after a slow fsync), when the shard shows no leader (0): wait it out.</summary>
    public static int LeaderOf(EmbeddedCluster cluster, int shard)
    {
        int leader = 0;
        Eventually(() => (leader = cluster.GetShards()[shard].Leader) != 0, $"shard {shard} has a leader");
        return leader;
    }

    public int LeaderOf(int shard) => LeaderOf(Cluster, shard);

    /// <summary>
    /// Waits until the leader of <paramref name="shard"/> has dropped what its transport had queued for a stopped node (a
    /// failed connection attempt after the caller's writes). The leader keeps sending a stopped follower appends, and they
    /// wait in the queue between two connection attempts (a backoff of up to a second, PeerSender): a node started before
    /// the next failed attempt is handed them on connecting and catches up from the log, though the leader's own log was
    /// compacted past it (Raft allows any message to arrive late). A test that needs the node to take a snapshot calls
    /// this after its writes: on a quiet machine they fit in one backoff, and about one run in two had no snapshot.
    /// </summary>
    public void WaitUntilQueuedAppendsAreDropped(int shard)
    {
        var leader = Cluster.Node(LeaderOf(shard))!.Host;
        long droppedBefore = leader.TransportStats!.DroppedDisconnected;
        Eventually(() => leader.TransportStats!.DroppedDisconnected > droppedBefore,
            "the leader dropped what it had queued for the stopped node (a failed connection attempt after the writes)");
    }

    public async ValueTask DisposeAsync()
    {
        if (Cluster.IsRunning) await Cluster.RemoveAsync(deleteData: true);
        else if (Directory.Exists(Path))
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(Path, recursive: true);
        }
    }
}
