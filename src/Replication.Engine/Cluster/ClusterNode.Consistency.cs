using System.Diagnostics;
using System.Security.Cryptography;
using Replication.Engine.Client;
using Replication.Engine.Raft;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// Replica comparison by Merkle tree (README, "Consistency checks"), coordinated by the node a client asked,
/// exchanging hashes, never values. Per shard: the leader confirms its leadership (a linearizable read) and
/// names the target index, its last log index, which every replica applies once it commits; each replica
/// captures its state machine at exactly that index (NodeHost.Consistency.cs); the leader's tree picks the
/// leaf key ranges and every other replica hashes into the same ranges; a replica whose root differs from the
/// one most replicas share is divergent, and for each of its differing leaves of at most
/// <see cref="DrillDownLimit"/> rows both sides list (key, row hash) pairs, which name the exact keys.
/// A replica that does not answer is reported in Unchecked, not as a divergence.
/// </summary>
public sealed partial class ClusterNode
{
    private const int DrillDownLimit = 256;
    private const int MaxConsistencyAttempts = 8;

    /// <summary>The coordinator: compares every shard (or one) and returns one result per shard.</summary>
    private async Task<IReadOnlyList<ReplicationConsistency>> CheckConsistencyAsync(ConsistencyArgs args, CancellationToken ct)
    {
        if (args.Shard is int bad && !Map.Contains(bad)) throw new ShardNotFoundException(bad) { Target = bad };
        var timeout = TimeSpan.FromMilliseconds(args.TimeoutMs);
        var shards = args.Shard is int one ? new[] { one } : ShardIds.ToArray();
        var results = new List<ReplicationConsistency>(shards.Length);
        foreach (int s in shards) results.Add(await CheckShardAsync(s, timeout, ct).ConfigureAwait(false));
        return results;
    }

    private async Task<ReplicationConsistency> CheckShardAsync(int shard, TimeSpan timeout, CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        var deadline = Deadline(timeout);
        string why = "no attempt completed";
        for (int attempt = 0; attempt < MaxConsistencyAttempts && Remaining(deadline) > TimeSpan.Zero; attempt++)
        {
            var target = await RouteAsync(shard, deadline, idempotent: true,
                local: _ => MerkleTargetAsync(new ShardArgs(shard)),
                remote: async (node, remaining) => (await CallAdminAsync<MerkleTargetAnswer>(node, AdminOps.MerkleTarget, new ShardArgs(shard), remaining + NetworkMargin, ct).ConfigureAwait(false)).Answer,
                w => new QuorumUnavailableException(shard, timeout, w) { Target = shard }, ct).ConfigureAwait(false);
            var checkId = Guid.NewGuid();
            var replicas = target.Replicas.Order().ToArray();
            try
            {
                // Every replica registers its capture first, so none applies past the index before it is asked.
                var captures = replicas.Select(r => CaptureOnAsync(r, checkId, shard, target.Index, deadline, ct)).ToArray();
                var outcomes = await Task.WhenAll(captures).ConfigureAwait(false);
                if (outcomes.Contains(CaptureOutcome.Retry) || outcomes[Array.IndexOf(replicas, target.Leader)] != CaptureOutcome.Captured)
                {
                    // A replica moved past the index (a new leader committed beyond it) or no longer hosts the shard:
                    // compare again at a new index, rather than report a running replica unchecked.
                    why = $"the replicas could not all capture index {target.Index}";
                    continue;
                }
                var captured = outcomes.Select(o => o == CaptureOutcome.Captured).ToArray();
                var running = replicas.Where((_, i) => captured[i]).ToArray();
                var notChecked = replicas.Where((_, i) => !captured[i]).ToArray();
                var reference = (await CallAdminAsync<MerkleTreeAnswer>(target.Leader, AdminOps.MerkleTree, new MerkleTreeArgs(checkId, shard, null), Remaining(deadline) + NetworkMargin, ct).ConfigureAwait(false)).Answer;
                var others = running.Where(r => r != target.Leader).ToArray();
                var trees = await Task.WhenAll(others.Select(r => CallAdminAsync<MerkleTreeAnswer>(r, AdminOps.MerkleTree, new MerkleTreeArgs(checkId, shard, reference.Boundaries), Remaining(deadline) + NetworkMargin, ct))).ConfigureAwait(false);

                // Every replica hashed the same leaf ranges (the leader's). The replica(s) that differ are those whose
                // root is not the one most replicas agree on (the leader's on a tie), so a damaged leader is named as
                // the odd one out rather than making every healthy follower look divergent.
                var all = new List<(int Node, MerkleTreeAnswer Tree)> { (target.Leader, reference) };
                for (int i = 0; i < others.Length; i++) all.Add((others[i], trees[i].Answer));
                var majority = all.GroupBy(t => t.Tree.Root).OrderByDescending(g => g.Count()).ThenByDescending(g => g.Any(t => t.Node == target.Leader)).First().Key;
                var good = all.First(t => t.Tree.Root == majority);
                var digests = all.Select(t => new ReplicaDigest(t.Node, t.Node == target.Leader, t.Tree.Root, t.Tree.KeyCount)).ToList();
                var ranges = new List<DivergentRange>();
                foreach (var (node, tree) in all.Where(t => t.Tree.Root != majority))
                {
                    foreach (int leaf in MerkleTree.DifferingLeaves(Decode(good.Tree.Leaves), Decode(tree.Leaves)))
                    {
                        string? start = leaf == 0 ? null : reference.Boundaries[leaf - 1];
                        string? end = leaf >= reference.Boundaries.Count ? null : reference.Boundaries[leaf];
                        var keys = await DrillDownAsync(checkId, shard, good.Node, node, start, end, deadline, ct).ConfigureAwait(false);
                        ranges.Add(new DivergentRange(node, leaf, start, end, keys));
                    }
                }
                return new ReplicationConsistency
                {
                    Cluster = Name,
                    Shard = shard,
                    AppliedIndex = target.Index,
                    Status = ranges.Count == 0 ? ConsistencyStatus.Consistent : ConsistencyStatus.Divergent,
                    Replicas = digests.OrderBy(d => d.Node).ToArray(),
                    Leaves = reference.Leaves.Count,
                    DivergentRanges = ranges,
                    Unchecked = notChecked,
                    Duration = watch.Elapsed,
                };
            }
            catch (Exception e) when (e is ReplicationException or TimeoutException && !ct.IsCancellationRequested)
            {
                why = e.Message;
            }
            finally
            {
                foreach (int r in replicas)
                {
                    try { await CallAdminAsync<Empty>(r, AdminOps.MerkleEnd, new CutIdArgs(checkId), TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(false); }
                    catch (Exception e) when (e is ReplicationException or TimeoutException or PeerUnreachableException or ConnectionLostException) { /* expires on its own */ }
                }
            }
        }
        throw new QuorumUnavailableException(shard, timeout, $"the replicas could not be compared at one applied index: {why}") { Target = shard };
    }

    private enum CaptureOutcome { Captured, Unreachable, Retry }

    /// <summary>Asks a replica to capture the shard at the index: Captured; Unreachable (not running: reported unchecked);
    /// or Retry (it answered but could not: already past the index, not hosting the shard).</summary>
    private async Task<CaptureOutcome> CaptureOnAsync(int node, Guid checkId, int shard, long index, long deadline, CancellationToken ct)
    {
        try
        {
            await CallAdminAsync<ShardContentAnswer>(node, AdminOps.MerkleCapture, new MerkleCaptureArgs(checkId, shard, index, (long)Remaining(deadline).TotalMilliseconds),
                Remaining(deadline) + NetworkMargin, ct).ConfigureAwait(false);
            return CaptureOutcome.Captured;
        }
        catch (Exception e) when (e is PeerUnreachableException or ConnectionLostException or TimeoutException
            || e is ReplicationException { ErrorId: RemoteOperationException.NodeStopping } && !ct.IsCancellationRequested)
        {
            Log($"node {NodeId}: consistency check of shard {shard}: node {node} is not reachable ({e.Message})");
            return CaptureOutcome.Unreachable;
        }
        catch (ReplicationException e) when (e.ErrorId == NotHostedError && !ct.IsCancellationRequested)
        {
            Log($"node {NodeId}: consistency check of shard {shard}: node {node} is a member that holds no replica now (being rebuilt)");
            return CaptureOutcome.Unreachable;
        }
        catch (ReplicationException e) when (!ct.IsCancellationRequested)
        {
            Log($"node {NodeId}: consistency check of shard {shard}: node {node} gave no capture at {index} ({e.Message})");
            return CaptureOutcome.Retry;
        }
    }

    private async Task<IReadOnlyList<string>> DrillDownAsync(Guid checkId, int shard, int leader, int other, string? start, string? end, long deadline, CancellationToken ct)
    {
        var args = new MerkleRowsArgs(checkId, shard, start, end, DrillDownLimit);
        var left = (await CallAdminAsync<MerkleRowsAnswer>(leader, AdminOps.MerkleRows, args, Remaining(deadline) + NetworkMargin, ct).ConfigureAwait(false)).Answer;
        var right = (await CallAdminAsync<MerkleRowsAnswer>(other, AdminOps.MerkleRows, args, Remaining(deadline) + NetworkMargin, ct).ConfigureAwait(false)).Answer;
        if (left.Truncated || right.Truncated) return Array.Empty<string>();
        var keys = new List<string>();
        int i = 0, j = 0;
        while (i < left.Keys.Count || j < right.Keys.Count)
        {
            int c = i == left.Keys.Count ? 1 : j == right.Keys.Count ? -1 : KvStore.CompareKeys(left.Keys[i], right.Keys[j]);
            if (c < 0) keys.Add(left.Keys[i++]);
            else if (c > 0) keys.Add(right.Keys[j++]);
            else
            {
                if (left.Hashes[i] != right.Hashes[j]) keys.Add(left.Keys[i]);
                i++;
                j++;
            }
        }
        return keys;
    }

    private static byte[][] Decode(IReadOnlyList<string> hex) => hex.Select(Convert.FromHexString).ToArray();

    // ---- the replicas ----

    /// <summary>On the leader: confirms leadership with a quorum and names the index to compare at.</summary>
    private async Task<MerkleTargetAnswer> MerkleTargetAsync(ShardArgs args)
    {
        await _host.ConfirmReadAsync(args.Shard, lease: false).WaitAsync(AdminCallTimeout).ConfigureAwait(false);
        if (!_host.Status.TryGetValue(args.Shard, out var st) || st.Role != RaftRole.Leader)
            throw new RetryableException($"node {NodeId} is not the leader of shard {args.Shard}", st?.Leader ?? 0);
        return new MerkleTargetAnswer(NodeId, st.LastIndex, st.Voters.Concat(st.Learners).Distinct().ToArray());
    }

    /// <summary>ErrorId of a capture asked of a node that hosts no replica of the shard (a member being rebuilt).</summary>
    private const string NotHostedError = "ShardNotHosted";

    private async Task<ShardContentAnswer> CaptureForCheckAsync(MerkleCaptureArgs args, CancellationToken ct)
    {
        if (!_host.Status.ContainsKey(args.Shard))
            throw new RemoteOperationException(NotHostedError, ReplicationErrorKind.InvalidState, $"Node {NodeId} holds no replica of shard {args.Shard} now.");
        var capture = _host.CaptureAtAsync(args.Shard, args.Index, ct);
        var held = new HeldSnapshot(args.CheckId, capture, folder: null);
        _held[HeldKey(args.CheckId, args.Shard)] = held;
        try
        {
            await capture.WaitAsync(TimeSpan.FromMilliseconds(Math.Max(1, args.TimeoutMs)), ct).ConfigureAwait(false);
        }
        catch (RetryableException e)
        {
            throw new RemoteOperationException("CaptureFailed", ReplicationErrorKind.Unavailable, e.Message);
        }
        return new ShardContentAnswer(-1, "");
    }

    private async Task<MerkleTreeAnswer> BuildTreeAsync(MerkleTreeArgs args, CancellationToken ct)
    {
        var held = Held(args.CheckId, args.Shard, "consistency capture");
        var snapshot = await held.Capture!.ConfigureAwait(false);
        await held.Gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var tree = await Task.Run(() => args.Boundaries is null ? MerkleTree.BuildReference(snapshot) : MerkleTree.Build(snapshot, args.Boundaries), ct).ConfigureAwait(false);
            return new MerkleTreeAnswer(tree.Boundaries, tree.Leaves.Select(l => Convert.ToHexString(l).ToLowerInvariant()).ToArray(), tree.RootHex, tree.KeyCount);
        }
        finally { held.Gate.Release(); }
    }

    private async Task<MerkleRowsAnswer> ListRowsAsync(MerkleRowsArgs args, CancellationToken ct)
    {
        var held = Held(args.CheckId, args.Shard, "consistency capture");
        var snapshot = await held.Capture!.ConfigureAwait(false);
        await held.Gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            int limit = Math.Clamp(args.Limit, 1, DrillDownLimit);
            var rows = snapshot.Rows(args.Start, args.End).Take(limit + 1).ToList();
            bool truncated = rows.Count > limit;
            if (truncated) rows.RemoveAt(rows.Count - 1);
            return new MerkleRowsAnswer(rows.Select(r => r.Key).ToArray(), rows.Select(r => RowDigest.Of(new[] { r }).Sha256).ToArray(), truncated);
        }
        finally { held.Gate.Release(); }
    }
}
