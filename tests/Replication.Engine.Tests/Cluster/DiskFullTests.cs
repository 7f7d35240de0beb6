using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Replication.Engine.Cluster;
using Replication.Engine.Raft;
using Replication.Engine.Storage;
using Xunit;
using Xunit.Abstractions;

namespace Replication.Engine.Tests.Cluster;

/// <summary>
/// A full disk (issue 13, item 2): writes fail fast with DiskFull, reads keep working, nothing is lost or corrupted,
/// and writes resume by themselves once there is room (Cluster/NodeHost.DiskFull.cs). Tested for real where the
/// machine allows it — the whole cluster on a small tmpfs mounted by the test (needs root), filled with a ballast
/// file and then by the cluster's own writes — and through the storage fault hooks otherwise (a decorator that fails
/// every write with SQLite's own SQLITE_FULL). Each test prints which one ran ("RAN: ...").
/// </summary>
[Trait("Category", "DiskFault")]
public sealed class DiskFullTests(ITestOutputHelper output)
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly TimeSpan WriteTimeout = TimeSpan.FromSeconds(2);
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    private void Log(string line)
    {
        try { output.WriteLine($"{_clock.Elapsed.TotalSeconds,7:0.000} {line}"); } catch (InvalidOperationException) { }
    }

    [Fact]
    public async Task Every_disk_full_refuses_writes_fast_keeps_reads_and_resumes_by_itself_without_losing_anything()
    {
        using var tmpfs = SmallFilesystem.TryMount(64, Log);
        if (tmpfs is not null)
        {
            Log($"RAN: a real {tmpfs.SizeMb} MB tmpfs at {tmpfs.Path}, filled by a ballast file and the cluster's own writes");
            var real = new BallastDisk(tmpfs.Path, reserveBytes: 3 << 20);
            await FullDiskScenarioAsync(System.IO.Path.Combine(tmpfs.Path, "cluster"), null, real);
        }
        else
        {
            Log("RAN: storage fault hooks (no small filesystem could be mounted here: not root, or not Linux): every write fails with SQLITE_FULL");
            var hooks = new HookDisk();
            await FullDiskScenarioAsync(null, hooks.Decorate, hooks);
        }
    }

    [Fact]
    public async Task Every_disk_full_through_the_storage_hooks()
    {
        Log("RAN: storage fault hooks: every write of every node fails with SQLITE_FULL (the same scenario as the real filesystem)");
        var hooks = new HookDisk();
        await FullDiskScenarioAsync(null, hooks.Decorate, hooks);
    }

    /// <summary>Fills the disk, checks the promises while full, frees it, checks that writes resume and nothing acknowledged was lost.</summary>
    private async Task FullDiskScenarioAsync(string? path, Func<int, INodeStorage, INodeStorage>? decorator, IFillableDisk disk)
    {
        // While every disk is full no leader can be elected (a vote must be durable first), so a shard whose leader is
        // lost has none until there is room. A longer election timeout (400-800 ms) keeps a busy test machine from
        // deposing a healthy leader by a scheduling delay; the product's default is 150-300 ms.
        // A 1 s election timeout: while every disk is full a lost leader cannot be replaced (a candidate must persist its term).
        // (The reads while full failed in one full-suite run in three, "Shard 0 could not reach a quorum within 20 s", which
        // was first taken for a spurious election. It was a leader whose state.db filled right after an entry committed: it
        // could not apply it, and waited for that to serve any read. Fixed in NodeHost.Requests.cs, UnaffectedWhileFull, and
        // pinned by the test after this one.)
        await using var f = await ClusterFixture.StartAsync(shards: 2, path: path, configure: o => o with { StorageDecorator = decorator, Log = Log, ElectionTicks = 100 });
        var acked = new Dictionary<string, string>();
        var unknown = new Dictionary<string, string>();
        for (int i = 0; i < 40; i++)
        {
            var r = await f.PutAsync($"before-{i}", $"b{i}");
            acked[r.Key] = r.Value;
        }
        Log("40 writes acknowledged; filling the disk");
        await disk.FillAsync();

        // Write until DiskFull answers. Before that, writes may be acknowledged (the disk still had room) or time out
        // (a leader persisted an entry its full followers could not): of unknown outcome, never reported as done.
        string payload = new('x', 4096);
        var diskFullLatencies = new List<TimeSpan>();
        for (int i = 0; diskFullLatencies.Count < 6; i++)
        {
            Assert.True(i < 3000 && _clock.Elapsed < TimeSpan.FromSeconds(120), $"no DiskFull after {i} writes");
            string key = $"during-{i}", value = $"d{i}-{payload}";
            var started = _clock.Elapsed;
            var r = (await f.Cluster.WriteAsync(new[] { new KeyWrite(key, value) }, WriteConcern.Majority, WriteTimeout, None))[0];
            var took = _clock.Elapsed - started;
            if (r.Error is null) acked[key] = value;
            else if (r.Error.ErrorId == DiskFullException.Id)
            {
                Assert.IsType<DiskFullException>(r.Error);
                Assert.Equal(ReplicationErrorKind.Unavailable, r.Error.Kind);
                diskFullLatencies.Add(took);
                if (diskFullLatencies.Count == 1) Log($"first DiskFull after {i} writes: {r.Error.Message}");
            }
            else unknown[key] = value;
        }
        var median = diskFullLatencies.Order().ElementAt(diskFullLatencies.Count / 2);
        Log($"DiskFull answers took {string.Join(", ", diskFullLatencies.Select(t => $"{t.TotalMilliseconds:0} ms"))}; {acked.Count} acknowledged, {unknown.Count} unknown so far");
        Assert.True(median < WriteTimeout / 2, $"DiskFull should come fast, not at the timeout: median {median.TotalMilliseconds:0} ms");
        // (Status asked asynchronously: a blocking call here can starve the thread pool that carries the nodes' messages,
        // delaying heartbeat answers past an election timeout, and while every disk is full a lost leader is not replaced.)
        var full = (await f.Cluster.StatusAsync(None)).Nodes;
        Assert.Contains(full, n => n.DiskFull && n.StateReason?.StartsWith("refusing writes: its disk is full", StringComparison.Ordinal) == true);

        // Reads keep working while the disk is full: linearizable reads of acknowledged writes.
        for (int i = 0; i < 40; i += 4)
            Assert.Equal($"b{i}", (await f.Cluster.GetAsync($"before-{i}", ReadConsistency.Linearizable, ClusterFixture.Bound, None))?.Value);
        Assert.All((await f.Cluster.StatusAsync(None)).Nodes, n => Assert.Equal(NodeState.Running, n.State)); // nobody stopped
        Log("linearizable reads served while full; every node running");

        disk.Free();
        Log("disk freed");
        var resumed = Stopwatch.StartNew();
        for (int shard = 0; shard < 2; shard++)
        {
            string key = Enumerable.Range(0, 1000).Select(i => $"after-{i}").First(k => Replication.Engine.Ring.ShardRangeMap.Even(2).ShardFor(k) == shard);
            while (true)
            {
                Assert.True(resumed.Elapsed < ClusterFixture.Bound, $"writes to shard {shard} did not resume");
                var r = (await f.Cluster.WriteAsync(new[] { new KeyWrite(key, "a") }, WriteConcern.Majority, WriteTimeout, None))[0];
                if (r.Error is null)
                {
                    acked[key] = "a";
                    break;
                }
                if (r.Error.ErrorId != DiskFullException.Id) unknown[key] = "a";
                await Task.Delay(50);
            }
        }
        Log($"writes resumed by themselves {resumed.ElapsedMilliseconds} ms after the disk was freed");
        ClusterFixture.Eventually(() => f.Cluster.GetNodes().All(n => n.StateReason?.StartsWith("refusing", StringComparison.Ordinal) != true), "no node refuses writes any more");

        // Nothing acknowledged was lost; writes of unknown outcome are there with their value or not at all; replicas agree.
        foreach (var (key, value) in acked)
            Assert.Equal(value, (await f.Cluster.GetAsync(key, ReadConsistency.Linearizable, ClusterFixture.Bound, None))?.Value);
        foreach (var (key, value) in unknown)
        {
            var read = await f.Cluster.GetAsync(key, ReadConsistency.Linearizable, ClusterFixture.Bound, None);
            Assert.True(read is null || read.Value == value, $"{key}: {read?.Value}");
        }
        ClusterFixture.Eventually(() =>
        {
            var nodes = f.Cluster.GetNodes();
            return nodes.All(n => n.State == NodeState.Running && n.LagEntries == 0) && nodes.Select(n => n.AppliedIndex).Distinct().Count() == 1;
        }, "every replica caught up");
        Assert.All(await f.Cluster.CheckConsistencyAsync(null, ClusterFixture.Bound, None), c => Assert.True(c.Consistent));
        Log($"{acked.Count} acknowledged writes all read back; {unknown.Count} of unknown outcome consistent; replicas identical");
    }

    [Fact]
    public async Task A_leader_whose_disk_is_full_hands_its_shard_to_a_follower_that_can_persist()
    {
        Log("RAN: storage fault hooks: only the leader's writes fail with SQLITE_FULL");
        var hooks = new HookDisk();
        await using var f = await ClusterFixture.StartAsync(shards: 1, configure: o => o with { StorageDecorator = hooks.Decorate, Log = Log });
        var acked = new Dictionary<string, string>();
        for (int i = 0; i < 20; i++) acked[$"k{i}"] = (await f.PutAsync($"k{i}", $"v{i}")).Value;
        int full = f.LeaderOf(0);
        hooks.FullNodes = new HashSet<int> { full };
        Log($"node {full} (leader of shard 0) has a full disk now");

        int errors = 0;
        for (int i = 20; i < 120; i++)
        {
            var r = (await f.Cluster.WriteAsync(new[] { new KeyWrite($"k{i}", $"v{i}") }, WriteConcern.Majority, WriteTimeout, None))[0];
            if (r.Error is null) acked[$"k{i}"] = $"v{i}";
            else errors++;
        }
        int leader = f.LeaderOf(0);
        Log($"leader of shard 0 now: node {leader}; {errors} of 100 writes failed while it moved");
        Assert.NotEqual(full, leader);
        Assert.True(errors <= 10, $"{errors} writes failed: the shard should move to a follower that can persist");
        Assert.Equal(NodeState.Running, f.Cluster.GetNode(full).State);

        hooks.FullNodes = new HashSet<int>();
        ClusterFixture.Eventually(() =>
        {
            var nodes = f.Cluster.GetNodes();
            return nodes.All(n => n.State == NodeState.Running && n.LagEntries == 0) && nodes.Select(n => n.AppliedIndex).Distinct().Count() == 1;
        }, "the node that was full caught up once it had room");
        foreach (var (key, value) in acked)
            Assert.Equal(value, (await f.Cluster.GetAsync(key, ReadConsistency.Linearizable, ClusterFixture.Bound, None))?.Value);
        Assert.All(await f.Cluster.CheckConsistencyAsync(null, ClusterFixture.Bound, None), c => Assert.True(c.Consistent));
    }

    [Fact]
    public async Task A_leader_whose_state_db_is_full_still_serves_linearizable_reads_its_unapplied_entries_do_not_touch()
    {
        Log("RAN: storage fault hooks: only the leader's state.db is full (its raft.db takes entries, it cannot apply them)");
        var hooks = new HookDisk();
        await using var f = await ClusterFixture.StartAsync(shards: 1, configure: o => o with { StorageDecorator = hooks.Decorate, Log = Log, ElectionTicks = 100 });
        for (int i = 0; i < 10; i++) await f.PutAsync($"k{i}", $"v{i}");
        int leader = f.LeaderOf(0);
        // The followers are suspended, so the full leader cannot hand the shard over (as when every disk is full, and no
        // follower can persist a new term): the reads below must be served by a leader that cannot apply.
        foreach (var n in f.Cluster.GetNodes().Where(n => n.Id != leader))
            await f.Cluster.SetNodeSuspendedAsync(n.Id, suspended: true, drain: false, ClusterFixture.Bound, None);
        hooks.StateFullNodes = new HashSet<int> { leader };
        var pending = (await f.Cluster.WriteAsync(new[] { new KeyWrite("pending", "p") }, WriteConcern.Majority, TimeSpan.FromSeconds(1), None))[0];
        Log($"write while the leader's state.db is full: {pending.Error?.ErrorId ?? "acknowledged"}");
        Assert.NotNull(pending.Error); // committed on the followers' logs, but the leader cannot apply it: not acknowledged
        ClusterFixture.Eventually(() => f.Cluster.GetNodes().Any(n => n.Id != leader && n.AppliedIndex > f.Cluster.GetNode(leader).AppliedIndex),
            "the followers applied the write the leader could not");
        Assert.Equal(leader, f.LeaderOf(0));

        // Keys the unapplied entry does not touch: read linearizably from the applied state.
        for (int i = 0; i < 10; i++)
            Assert.Equal($"v{i}", (await f.Cluster.GetAsync($"k{i}", ReadConsistency.Linearizable, TimeSpan.FromSeconds(5), None))?.Value);
        // The key it writes: never its old state (absent) while the write is committed but not applied here.
        var blocked = await Assert.ThrowsAnyAsync<ReplicationException>(() => f.Cluster.GetAsync("pending", ReadConsistency.Linearizable, TimeSpan.FromSeconds(1), None));
        Log($"read of the key with an unapplied write: {blocked.ErrorId}");
        Assert.Equal(leader, f.LeaderOf(0));

        hooks.StateFullNodes = new HashSet<int>();
        Assert.Equal("p", (await f.Cluster.GetAsync("pending", ReadConsistency.Linearizable, ClusterFixture.Bound, None))?.Value);
        foreach (var n in f.Cluster.GetNodes().Where(n => n.Id != leader))
            await f.Cluster.SetNodeSuspendedAsync(n.Id, suspended: false, drain: false, ClusterFixture.Bound, None);
    }

    /// <summary>What a test does to a disk: fill it (the next writes fail) and free it again.</summary>
    private interface IFillableDisk
    {
        Task FillAsync();
        void Free();
    }

    /// <summary>A real filesystem filled by a ballast file, leaving <paramref name="reserveBytes"/> for the cluster's own writes to use up.</summary>
    private sealed class BallastDisk(string root, long reserveBytes) : IFillableDisk
    {
        private readonly string _ballast = System.IO.Path.Combine(root, "ballast");

        public async Task FillAsync()
        {
            long want = new DriveInfo(root).AvailableFreeSpace - reserveBytes;
            var block = new byte[1 << 20];
            await using var file = new FileStream(_ballast, FileMode.Create, FileAccess.Write);
            for (long written = 0; written < want; written += block.Length)
            {
                try { await file.WriteAsync(block.AsMemory(0, (int)Math.Min(block.Length, want - written))); }
                catch (IOException) { break; } // full already
            }
        }

        public void Free() => File.Delete(_ballast);
    }

    /// <summary>Storage hooks: while a node is full, its Save, Apply and Probe fail with SQLITE_FULL, storing nothing, as SQLite does.</summary>
    private sealed class HookDisk : IFillableDisk
    {
        private volatile bool _all;

        /// <summary>Nodes whose disk is full (besides all of them while filled).</summary>
        public volatile HashSet<int> FullNodes = new();

        /// <summary>Nodes whose state.db alone cannot grow: Apply and Probe fail, Save (raft.db) works.</summary>
        public volatile HashSet<int> StateFullNodes = new();

        public INodeStorage Decorate(int node, INodeStorage inner) => new Storage(this, node, inner);

        public Task FillAsync()
        {
            _all = true;
            return Task.CompletedTask;
        }

        public void Free() => _all = false;

        private bool IsFull(int node) => _all || FullNodes.Contains(node);

        private sealed class Storage(HookDisk disk, int node, INodeStorage inner) : INodeStorage
        {
            public void Save(IReadOnlyList<GroupWrite> writes)
            {
                ThrowIfFull();
                inner.Save(writes);
            }

            public IReadOnlyList<EntryApplyResult> Apply(int shard, IReadOnlyList<LogEntry> entries)
            {
                ThrowIfFull(state: true);
                return inner.Apply(shard, entries);
            }

            public void InstallSnapshotRows(int shard, long index, long term, ReadOnlyMemory<byte> chunk, bool first)
            {
                ThrowIfFull(state: true);
                inner.InstallSnapshotRows(shard, index, term, chunk, first);
            }

            public void CompleteSnapshotInstall(int shard, long index, long term, (ulong Start, ulong Last)? range)
            {
                ThrowIfFull(state: true);
                inner.CompleteSnapshotInstall(shard, index, term, range);
            }

            public void StageSnapshotRows(int shard, long index, long term, ReadOnlyMemory<byte> chunk, bool first)
            {
                ThrowIfFull(state: true);
                inner.StageSnapshotRows(shard, index, term, chunk, first);
            }

            public void BeginStagedSwap(int shard, long index, long term, (ulong Start, ulong Last)? range)
            {
                ThrowIfFull(state: true);
                inner.BeginStagedSwap(shard, index, term, range);
            }

            public bool SwapStagedRows(int shard, int maxKeys)
            {
                ThrowIfFull(state: true);
                return inner.SwapStagedRows(shard, maxKeys);
            }

            public void Probe()
            {
                ThrowIfFull(state: true);
                inner.Probe();
            }

            private void ThrowIfFull(bool state = false)
            {
                if (disk.IsFull(node) || (state && disk.StateFullNodes.Contains(node))) throw new SqliteException("SQLite Error 13: 'database or disk is full'.", 13);
            }
        }
    }
}
