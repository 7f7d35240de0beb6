using System.Collections.Concurrent;
using System.Diagnostics;
using Replication.Engine.Client;
using Replication.Engine.Cluster;
using Replication.Engine.Storage;
using Replication.Engine.Transport;
using Replication.Engine.Tests.Storage;
using Xunit;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// Crash safety with real processes (issue 4): a child process (tests/Replication.CrashHost) runs
/// an embedded cluster under concurrent writes and logs each acknowledgment; the test kills it with
/// SIGKILL at a seeded, random moment, then checks from the files it left:
///  1. every replica's state.db equals a replay of its own Raft log up to its applied index
///     (the applied index and the rows it describes were committed together);
///  2. after a restart from the same folders, every acknowledged write is present with its
///     latest acknowledged value, or a value its writer issued later.
/// Rounds alternate between a cluster that never compacts (check 1 applies to every replica) and
/// one that compacts its logs every few dozen entries (check 1 becomes: no state machine behind
/// its compacted log). Rounds: REPLICATION_CRASH_ROUNDS (default 3; ./build.ps1 Crash runs more).
/// Every wait is bounded.
/// </summary>
public sealed class CrashSafetyTests
{
    private static readonly TimeSpan ChildBound = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Acknowledged_writes_survive_SIGKILL_and_every_replica_equals_a_replay_of_its_log()
    {
        int rounds = int.TryParse(Environment.GetEnvironmentVariable("REPLICATION_CRASH_ROUNDS"), out int r) && r > 0 ? Math.Min(r, 200) : 3;
        int seed = int.TryParse(Environment.GetEnvironmentVariable("REPLICATION_CRASH_SEED"), out int s) ? s : 20240601;
        var random = new Random(seed);
        using var dir = new TempFolder();
        // Two clusters, alternating rounds: one never compacts its logs, so every replica can be
        // compared with a full replay of its log; the other compacts every few dozen entries, so
        // kills land around compactions and snapshot bookkeeping (checked: acknowledged writes
        // survive, and no replica's state machine is behind its compacted log).
        var clusters = new[] { (Folder: Path.Combine(dir.Path, "full-log"), SnapshotEntries: 10_000_000), (Folder: Path.Combine(dir.Path, "compacting"), SnapshotEntries: 40) };
        var lastAcks = clusters.Select(_ => new Dictionary<string, (int Round, int Seq, string Value)>()).ToArray();
        long totalAcks = 0;
        int compactedReplicas = 0;

        for (int round = 1; round <= rounds; round++)
        {
            int which = (round - 1) % clusters.Length;
            var (folder, snapshotEntries) = clusters[which];
            var lastAck = lastAcks[which];
            int killAfter = random.Next(5, 400); // acknowledgments to wait for before the kill
            var acks = await RunAndKillAsync(folder, round, seed, killAfter, snapshotEntries);
            foreach (var (key, value) in acks)
            {
                var stamp = Parse(value);
                if (!lastAck.TryGetValue(key, out var prev) || (stamp.Round, stamp.Seq).CompareTo((prev.Round, prev.Seq)) > 0)
                    lastAck[key] = (stamp.Round, stamp.Seq, value);
            }
            totalAcks += acks.Count;

            compactedReplicas += CheckReplicasEqualReplayOfTheirLogs(folder, shards: 2, nodes: 3);
            await CheckAcknowledgedWritesAsync(folder, lastAck);
        }
        if (rounds >= 2) Assert.True(compactedReplicas > 0, "the compacting cluster never compacted a log: the rounds did not exercise compaction");
        Assert.True(totalAcks >= rounds * 5, $"the child acknowledged only {totalAcks} writes in {rounds} rounds (seed {seed})");
    }

    [Fact]
    [Trait("Category", "Process")]
    public async Task Acknowledged_writes_survive_SIGKILL_of_every_node_process_at_once()
    {
        // The same checks with the deployed shape: three node processes (tests/Replication.NodeProcess), clients in this
        // process, and at a seeded moment every node process SIGKILLed at once (a power cut of the whole cluster).
        int rounds = int.TryParse(Environment.GetEnvironmentVariable("REPLICATION_CRASH_ROUNDS"), out int r) && r > 0 ? Math.Min(r, 200) : 2;
        int seed = int.TryParse(Environment.GetEnvironmentVariable("REPLICATION_CRASH_SEED"), out int s) ? s : 20261129;
        var random = new Random(seed);
        using var nodes = new NodeProcesses(_ => { });
        var lastAck = new Dictionary<string, (int Round, int Seq, string Value)>();
        long totalAcks = 0;
        for (int round = 1; round <= rounds; round++)
        {
            if (round == 1)
            {
                await nodes.StartAsync(1, null, "--name", "crash", "--shards", "2", "--rf", "3");
                await nodes.StartAsync(2, 1);
                await nodes.StartAsync(3, 1);
            }
            else
                foreach (int slot in new[] { 1, 2, 3 }) await nodes.StartAsync(slot, null);
            await using (var client = await ClusterClient.ConnectAsync(nodes.Endpoints.ToArray(), ClusterSecret.FromString(NodeProcesses.Secret)))
            {
                if (round > 1) await CheckAcknowledgedWritesAsync(client, lastAck);
                await WaitFormedAsync(client);
                int killAfter = random.Next(20, 400);
                var acks = new ConcurrentQueue<(string Key, string Value)>();
                using var stop = new CancellationTokenSource();
                var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
                {
                    for (int i = 0; i < 5000 && !stop.IsCancellationRequested; i++)
                    {
                        string key = $"w{w}:k{i % 16}", value = $"r{round}:w{w}:i{i}";
                        try
                        {
                            var result = (await client.WriteAsync([new KeyWrite(key, value)], WriteConcern.Majority, TimeSpan.FromSeconds(5), CancellationToken.None))[0];
                            if (result.Error is null) acks.Enqueue((key, value));
                        }
                        catch (ReplicationException) { /* the cluster is gone mid-write: not acknowledged */ }
                    }
                })).ToArray();
                bool reached = SpinWait.SpinUntil(() => acks.Count >= killAfter, ChildBound);
                Assert.True(reached, $"round {round}: only {acks.Count} of {killAfter} writes acknowledged in {ChildBound}");
                foreach (int slot in new[] { 1, 2, 3 }) nodes.Kill(slot); // SIGKILL, every node, as fast as we can
                var snapshot = acks.ToArray(); // every acknowledgment received before (or while) the nodes died
                stop.Cancel();
                await Task.WhenAll(writers);
                foreach (var (key, value) in snapshot.Concat(acks))
                {
                    var stamp = Parse(value);
                    if (!lastAck.TryGetValue(key, out var prev) || (stamp.Round, stamp.Seq).CompareTo((prev.Round, prev.Seq)) > 0)
                        lastAck[key] = (stamp.Round, stamp.Seq, value);
                }
                totalAcks += acks.Count;
            }
            CheckReplicasEqualReplayOfTheirLogs(nodes.Root, shards: 2, nodes: 3, nodeFolder: "node{0}");
        }
        foreach (int slot in new[] { 1, 2, 3 }) await nodes.StartAsync(slot, null);
        await using (var client = await ClusterClient.ConnectAsync(nodes.Endpoints.ToArray(), ClusterSecret.FromString(NodeProcesses.Secret)))
            await CheckAcknowledgedWritesAsync(client, lastAck);
        Assert.True(totalAcks >= rounds * 20, $"only {totalAcks} writes acknowledged in {rounds} rounds (seed {seed})");
    }

    private static async Task WaitFormedAsync(ClusterClient client)
    {
        bool formed = SpinWait.SpinUntil(() =>
        {
            try { return client.GetShards().All(sh => sh.Voters.Count == 3 && sh.Leader != 0); }
            catch (ReplicationException) { return false; }
        }, ChildBound);
        Assert.True(formed, "the node processes did not form a cluster with 3 voters per shard");
    }

    /// <summary>Starts the child, waits (bounded) for <paramref name="killAfter"/> acknowledgments, SIGKILLs it, returns the ACK lines.</summary>
    private static async Task<List<(string Key, string Value)>> RunAndKillAsync(string folder, int round, int seed, int killAfter, int snapshotEntries)
    {
        string host = Path.Combine(AppContext.BaseDirectory, "Replication.CrashHost.dll");
        Assert.True(File.Exists(host), $"crash host not built next to the tests: {host}");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { host, folder, round.ToString(), seed.ToString(), "4", "5000", snapshotEntries.ToString() }) psi.ArgumentList.Add(a);
        var lines = new ConcurrentQueue<string>();
        var errors = new ConcurrentQueue<string>();
        int ackCount = 0;
        bool ready = false, done = false;
        using var child = new Process { StartInfo = psi };
        child.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            if (e.Data == "READY") Volatile.Write(ref ready, true);
            else if (e.Data == "DONE") Volatile.Write(ref done, true);
            else if (e.Data.StartsWith("ACK ", StringComparison.Ordinal))
            {
                lines.Enqueue(e.Data);
                Interlocked.Increment(ref ackCount);
            }
        };
        child.ErrorDataReceived += (_, e) => { if (e.Data is not null) errors.Enqueue(e.Data); };
        child.Start();
        child.BeginOutputReadLine();
        child.BeginErrorReadLine();
        try
        {
            bool reached = SpinWait.SpinUntil(() => Volatile.Read(ref ackCount) >= killAfter || Volatile.Read(ref done) || child.HasExited, ChildBound);
            Assert.True(reached, $"round {round}: the child did not reach {killAfter} acknowledgments in {ChildBound} (ready: {ready}); stderr: {string.Join(" | ", errors.Take(20))}");
            Assert.True(ready, $"round {round}: the child exited before its cluster was ready; stderr: {string.Join(" | ", errors.Take(20))}");
        }
        finally
        {
            if (!child.HasExited) child.Kill(entireProcessTree: true); // SIGKILL on Unix
            using var exit = new CancellationTokenSource(ChildBound);
            await child.WaitForExitAsync(exit.Token);
        }
        return lines.Select(l => l.Split(' ')).Select(p => (p[1], p[2])).ToList();
    }

    private static (int Round, int Writer, int Seq) Parse(string value)
    {
        var p = value.Split(':');
        return (int.Parse(p[0][1..]), int.Parse(p[1][1..]), int.Parse(p[2][1..]));
    }

    /// <summary>Reopens the killed cluster's folders in this process and reads every acknowledged key back.</summary>
    private static async Task CheckAcknowledgedWritesAsync(string folder, Dictionary<string, (int Round, int Seq, string Value)> lastAck)
    {
        var cluster = await EmbeddedCluster.StartAsync(new ClusterOptions { Name = "crash", Path = folder, Seed = 5 }, CancellationToken.None);
        try
        {
            await CheckAcknowledgedWritesAsync(cluster, lastAck);
        }
        finally
        {
            await cluster.RemoveAsync(deleteData: false);
        }
    }

    /// <summary>Reads every acknowledged key back: present, with its last acknowledged value or one its writer issued later.</summary>
    private static async Task CheckAcknowledgedWritesAsync(IReplicationCluster cluster, Dictionary<string, (int Round, int Seq, string Value)> lastAck)
    {
        await cluster.WaitForLeadersAsync(null, ClusterFixture.Bound, CancellationToken.None);
        var stored = new Dictionary<string, string>();
        await foreach (var k in cluster.ScanAsync("", ReadConsistency.Linearizable, ClusterFixture.Bound, CancellationToken.None)) stored[k.Key] = k.Value;
        foreach (var (key, ack) in lastAck)
        {
            Assert.True(stored.TryGetValue(key, out var value), $"acknowledged key {key} = {ack.Value} is missing after the crash");
            var now = Parse(value!);
            Assert.True((now.Round, now.Seq).CompareTo((ack.Round, ack.Seq)) >= 0,
                $"key {key}: found {value}, older than the acknowledged {ack.Value}");
        }
    }

    /// <summary>
    /// For each replica: replays its own Raft log (entries 1..applied) into a fresh state machine and
    /// compares it with its state.db, row by row. Run on the files a SIGKILL left.
    /// </summary>
    /// <returns>How many (replica, shard) logs were compacted (and so checked only against their snapshot).</returns>
    internal static int CheckReplicasEqualReplayOfTheirLogs(string folder, int shards, int nodes, string nodeFolder = "node-{0}")
    {
        int compacted = 0;
        for (int node = 1; node <= nodes; node++)
        {
            string dir = Path.Combine(folder, string.Format(System.Globalization.CultureInfo.InvariantCulture, nodeFolder, node));
            using var log = new RaftLogStore(Path.Combine(dir, "raft.db"));
            using var kv = new KvStore(Path.Combine(dir, "state.db"));
            using var replayDir = new TempFolder();
            using var replay = new KvStore(replayDir.File("replay.db"));
            for (int shard = 0; shard < shards; shard++)
            {
                var group = log.Load(shard);
                long applied = kv.AppliedIndex(shard);
                long last = group.Entries.Count == 0 ? group.Snapshot?.Index ?? 0 : group.Entries[^1].Index;
                Assert.True(applied <= last, $"node {node} shard {shard}: applied {applied} beyond its log's last index {last}");
                if (group.Snapshot is { Index: > 0 } snapshot) // (a joined replica records its membership as a snapshot at index 0: not a compaction)
                {
                    // Compacted: the log no longer holds the start of history, so the replay cannot
                    // be checked; what must hold is that the state machine is not behind the log.
                    Assert.True(applied >= snapshot.Index, $"node {node} shard {shard}: state machine at {applied} is behind the log compacted to {snapshot.Index}");
                    compacted++;
                    continue;
                }
                replay.Apply(shard, group.Entries.Where(e => e.Index <= applied).ToList());
                Assert.Equal(applied, replay.AppliedIndex(shard));
                Assert.Equal(kv.AppliedTerm(shard), replay.AppliedTerm(shard));
                var expected = replay.Scan(shard, "").ToList();
                var actual = kv.Scan(shard, "").ToList();
                Assert.Equal(expected, actual);
            }
        }
        return compacted;
    }
}
