using System.Diagnostics;
using Replication.Engine.Raft;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// Replica comparison by Merkle tree. Per shard: confirm the leader (linearizable read), choose a
/// target index every running replica can still reach (the leader's commit index, or higher if a
/// replica already applied more), have each replica's loop snapshot state.db exactly at that index
/// (NodeHost.Consistency.cs), then build the trees off the loop threads: the leader's tree picks the
/// leaf key ranges, every other replica hashes into the same ranges, and differing leaves become
/// <see cref="DivergentRange"/>s, drilled down to exact keys when small.
/// </summary>
public sealed partial class EmbeddedCluster
{
    /// <summary>A divergent leaf is compared key by key when both sides hold at most this many rows in it.</summary>
    private const int DrillDownLimit = 256;
    private const int MaxConsistencyAttempts = 8;

    public async Task<IReadOnlyList<ReplicationConsistency>> CheckConsistencyAsync(int? shard, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfRemoved();
        if (shard is int bad && (bad < 0 || bad >= ShardCount)) throw new ShardNotFoundException(bad) { Target = bad };
        var shards = shard is int one ? new[] { one } : Enumerable.Range(0, ShardCount).ToArray();
        var results = new List<ReplicationConsistency>(shards.Length);
        foreach (int s in shards) results.Add(await CheckShardAsync(s, timeout, cancellationToken).ConfigureAwait(false));
        return results;
    }

    private async Task<ReplicationConsistency> CheckShardAsync(int shard, TimeSpan timeout, CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        string why = "no attempt completed";
        for (int attempt = 0; attempt < MaxConsistencyAttempts; attempt++)
        {
            var remaining = Remaining(deadline);
            if (remaining <= TimeSpan.Zero) break;
            var leader = await ConfirmReadAsync(shard, ReadConsistency.Linearizable, remaining, ct, timeout).ConfigureAwait(false);
            var replicaIds = _placement.ReplicasOf(shard);
            var running = replicaIds.Select(id => _nodes[id - 1]).Where(n => n is not null).Select(n => n!).ToArray();
            if (!running.Contains(leader)) continue; // the leader stopped meanwhile
            var notRunning = replicaIds.Where(id => running.All(n => n.Id != id)).ToArray();
            long target = leader.Status.TryGetValue(shard, out var ls) ? ls.Committed : 0;
            foreach (var n in running)
                if (n.Status.TryGetValue(shard, out var st)) target = Math.Max(target, st.Applied);

            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(Remaining(deadline) > TimeSpan.Zero ? Remaining(deadline) : TimeSpan.FromMilliseconds(1));
            var tasks = running.Select(n => Capture(n, shard, target, cts.Token)).ToArray();
            try
            {
                await Task.WhenAll(tasks).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RetryableException or OperationCanceledException && !ct.IsCancellationRequested)
            {
                foreach (var t in tasks) if (t.IsCompletedSuccessfully) t.Result.Dispose();
                var late = running.Where((n, i) => !tasks[i].IsCompletedSuccessfully).Select(n => n.Id);
                why = ex is RetryableException ? ex.Message : $"node(s) {string.Join(", ", late)} did not reach applied index {target} in time";
                continue;
            }
            var snapshots = tasks.Select(t => t.Result).ToArray();
            try
            {
                return await Task.Run(() => Compare(shard, leader.Id, target, snapshots, notRunning, watch), ct).ConfigureAwait(false);
            }
            finally
            {
                foreach (var s in snapshots) s.Dispose();
            }
        }
        throw new QuorumUnavailableException(shard, timeout, $"the replicas could not be compared at one applied index: {why}") { Target = shard };
    }

    private static Task<ShardSnapshot> Capture(NodeHost node, int shard, long index, CancellationToken ct)
    {
        try
        {
            return node.CaptureAtAsync(shard, index, ct);
        }
        catch (RetryableException ex)
        {
            return Task.FromException<ShardSnapshot>(ex);
        }
    }

    private ReplicationConsistency Compare(int shard, int leaderId, long index, ShardSnapshot[] snapshots, int[] notRunning, Stopwatch watch)
    {
        var leaderSnapshot = snapshots.Single(s => s.Node == leaderId);
        var reference = MerkleTree.BuildReference(leaderSnapshot);
        var others = snapshots.Where(s => s.Node != leaderId).ToArray();
        // One thread per snapshot: each snapshot's connection is used by one thread at a time.
        var trees = Task.WhenAll(others.Select(s => Task.Run(() => MerkleTree.Build(s, reference.Boundaries)))).GetAwaiter().GetResult();

        var digests = new List<ReplicaDigest> { new(leaderId, true, reference.RootHex, reference.KeyCount) };
        var ranges = new List<DivergentRange>();
        for (int i = 0; i < others.Length; i++)
        {
            digests.Add(new ReplicaDigest(others[i].Node, false, trees[i].RootHex, trees[i].KeyCount));
            foreach (int leaf in reference.DifferingLeaves(trees[i]))
            {
                var (start, end) = reference.RangeOf(leaf);
                ranges.Add(new DivergentRange(others[i].Node, leaf, start, end, DrillDown(leaderSnapshot, others[i], start, end)));
            }
        }
        return new ReplicationConsistency
        {
            Cluster = Name,
            Shard = shard,
            AppliedIndex = index,
            Status = ranges.Count == 0 ? ConsistencyStatus.Consistent : ConsistencyStatus.Divergent,
            Replicas = digests.OrderBy(d => d.Node).ToArray(),
            Leaves = reference.Leaves.Length,
            DivergentRanges = ranges,
            Unchecked = notRunning,
            Duration = watch.Elapsed,
        };
    }

    /// <summary>The keys in [start, end) that differ between two snapshots; empty when the range is too large to list.</summary>
    private static IReadOnlyList<string> DrillDown(ShardSnapshot a, ShardSnapshot b, string? start, string? end)
    {
        var left = a.Rows(start, end).Take(DrillDownLimit + 1).ToList();
        var right = b.Rows(start, end).Take(DrillDownLimit + 1).ToList();
        if (left.Count > DrillDownLimit || right.Count > DrillDownLimit) return Array.Empty<string>();
        var keys = new List<string>();
        int i = 0, j = 0;
        while (i < left.Count || j < right.Count)
        {
            int c = i == left.Count ? 1 : j == right.Count ? -1 : KvStore.CompareKeys(left[i].Key, right[j].Key);
            if (c < 0) keys.Add(left[i++].Key);
            else if (c > 0) keys.Add(right[j++].Key);
            else
            {
                if (left[i] != right[j]) keys.Add(left[i].Key);
                i++;
                j++;
            }
        }
        return keys;
    }
}
