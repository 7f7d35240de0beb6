using System.Diagnostics;
using System.Runtime.CompilerServices;
using Replication.Engine.Raft;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// Client routing: every write goes to its shard's leader wherever it runs, reads are confirmed
/// by the leader (ReadIndex or lease) or served by any replica (stale). A request that reaches a
/// node that cannot serve it (not leader, stopping, entry lost to a leader change) is retried
/// against the current leader until the caller's deadline, then reported as
/// <see cref="QuorumUnavailableException"/> — never dropped silently, never waited on forever.
/// </summary>
public sealed partial class EmbeddedCluster
{
    /// <summary>Pause between routing attempts while a shard has no reachable leader (an election takes a few hundred ms).</summary>
    private static readonly TimeSpan RetryBackoff = TimeSpan.FromMilliseconds(15);

    public async Task<IReadOnlyList<WriteResult>> WriteAsync(IReadOnlyList<KeyWrite> writes, WriteConcern concern, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfRemoved();
        var results = new WriteResult?[writes.Count];
        var byShard = WriteBatching.GroupByShard(writes, _shardMap, results);
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        await Task.WhenAll(byShard.Select(kv => WriteShardAsync(kv.Key, kv.Value, writes, results, concern, timeout, deadline, cancellationToken))).ConfigureAwait(false);
        return results!;
    }

    private async Task WriteShardAsync(int shard, List<int> positions, IReadOnlyList<KeyWrite> writes, WriteResult?[] results,
        WriteConcern concern, TimeSpan timeout, long deadline, CancellationToken ct)
    {
        var pending = WriteBatching.Pack(writes, positions);
        string why = "no leader was elected";
        while (pending.Count > 0)
        {
            ct.ThrowIfCancellationRequested();
            var remaining = Remaining(deadline);
            if (remaining <= TimeSpan.Zero) break;
            var leader = FindLeader(shard);
            if (leader is null)
            {
                await Task.Delay(RetryBackoff, ct).ConfigureAwait(false);
                continue;
            }
            IReadOnlyList<ProposalOutcome> outcomes;
            try
            {
                outcomes = await leader.ProposeAsync(shard, pending.Select(c => c.Command).ToArray(), concern).WaitAsync(remaining, ct).ConfigureAwait(false);
            }
            catch (RetryableException ex)
            {
                why = ex.Message;
                await Task.Delay(RetryBackoff, ct).ConfigureAwait(false);
                continue;
            }
            catch (TimeoutException)
            {
                why = $"node {leader.Id} did not get the write acknowledged (outcome unknown)";
                break;
            }
            var lost = new List<(int[] Positions, byte[] Command)>();
            for (int j = 0; j < outcomes.Count; j++)
            {
                var outcome = outcomes[j];
                if (outcome.Lost)
                {
                    why = "the entry was lost in a leader change";
                    lost.Add(pending[j]);
                    continue;
                }
                var chunk = pending[j];
                for (int k = 0; k < chunk.Positions.Length; k++)
                {
                    int pos = chunk.Positions[k];
                    results[pos] = WriteBatching.ToResult(writes[pos], shard, outcome.Index, outcome.Results?[k], Name);
                }
            }
            pending = lost;
        }
        foreach (var chunk in pending)
            foreach (int pos in chunk.Positions)
                results[pos] = new WriteResult(writes[pos], null, false, new QuorumUnavailableException(shard, timeout, why) { Target = writes[pos].Key });
    }


    public async Task<ReplicationKey?> GetAsync(string key, ReadConsistency consistency, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfRemoved();
        KvLimits.Validate(key, null);
        int shard = _shardMap.ShardFor(key);
        var node = await ConfirmReadAsync(shard, consistency, timeout, cancellationToken).ConfigureAwait(false);
        var stored = node.Store.Get(shard, key);
        return stored is null ? null : ToKey(stored, shard);
    }

    public async IAsyncEnumerable<ReplicationKey> ScanAsync(string prefix, ReadConsistency consistency, TimeSpan timeout,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ThrowIfRemoved();
        if (System.Text.Encoding.UTF8.GetByteCount(prefix) > KvLimits.MaxKeyBytes)
            throw new InvalidKeyException(InvalidKeyException.InvalidPrefix, $"A prefix longer than {KvLimits.MaxKeyBytes} UTF-8 bytes matches no key.") { Target = prefix };
        // Confirm every shard first, so the whole scan reflects writes acknowledged before it began.
        var nodes = new NodeHost[ShardCount];
        for (int s = 0; s < ShardCount; s++) nodes[s] = await ConfirmReadAsync(s, consistency, timeout, cancellationToken).ConfigureAwait(false);

        // k-way merge of the per-shard ordered index scans, in UTF-8 byte order; nothing is materialised.
        var queue = new PriorityQueue<(int Shard, IEnumerator<StoredKey> Cursor), string>(Comparer<string>.Create(KvStore.CompareKeys));
        var cursors = new List<IEnumerator<StoredKey>>();
        try
        {
            for (int s = 0; s < ShardCount; s++)
            {
                var cursor = nodes[s].Store.Scan(s, prefix).GetEnumerator();
                cursors.Add(cursor);
                if (cursor.MoveNext()) queue.Enqueue((s, cursor), cursor.Current.Key);
            }
            while (queue.TryDequeue(out var item, out _))
            {
                cancellationToken.ThrowIfCancellationRequested();
                yield return ToKey(item.Cursor.Current, item.Shard);
                if (item.Cursor.MoveNext()) queue.Enqueue(item, item.Cursor.Current.Key);
            }
        }
        finally
        {
            foreach (var c in cursors) c.Dispose();
        }
    }

    public async Task<IReadOnlyList<ReplicationShard>> WaitForLeadersAsync(int? shard, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfRemoved();
        if (shard is int s0 && (s0 < 0 || s0 >= ShardCount)) throw new ShardNotFoundException(s0) { Target = s0 };
        var shards = shard is int s ? new[] { s } : Enumerable.Range(0, ShardCount).ToArray();
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        // A shard is ready when its leader can confirm a linearizable read: it has committed an
        // entry of its term and still hears from a quorum, so it can serve reads and writes.
        foreach (int id in shards)
            await ConfirmReadAsync(id, ReadConsistency.Linearizable, Remaining(deadline), cancellationToken, timeout).ConfigureAwait(false);
        var all = GetShards();
        return shards.Select(id => all[id]).ToArray();
    }

    /// <summary>
    /// Finds a node that may serve a read of <paramref name="shard"/> at the requested consistency
    /// and, for Linearizable/Lease, waits until its state machine reflects every write acknowledged
    /// before the call.
    /// </summary>
    private async Task<NodeHost> ConfirmReadAsync(int shard, ReadConsistency consistency, TimeSpan timeout, CancellationToken ct, TimeSpan? reportedTimeout = null)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        string why = "no leader was elected";
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var remaining = Remaining(deadline);
            if (remaining <= TimeSpan.Zero) throw new QuorumUnavailableException(shard, reportedTimeout ?? timeout, why) { Target = shard };
            if (consistency == ReadConsistency.Stale)
            {
                var replica = _nodes
                    .Where(n => n is not null && n.Status.ContainsKey(shard))
                    .OrderByDescending(n => n!.Status[shard].Applied)
                    .FirstOrDefault();
                if (replica is not null) return replica;
                why = "no replica of the shard is running";
                await Task.Delay(RetryBackoff, ct).ConfigureAwait(false);
                continue;
            }
            var leader = FindLeader(shard);
            if (leader is null)
            {
                await Task.Delay(RetryBackoff, ct).ConfigureAwait(false);
                continue;
            }
            try
            {
                await leader.ConfirmReadAsync(shard, consistency == ReadConsistency.Lease).WaitAsync(remaining, ct).ConfigureAwait(false);
                return leader;
            }
            catch (RetryableException ex)
            {
                why = ex.Message;
                await Task.Delay(RetryBackoff, ct).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                why = $"node {leader.Id} could not confirm its leadership with a quorum";
            }
        }
    }

    /// <summary>The running node that leads <paramref name="shard"/> in the highest term, else the leader some replica believes in.</summary>
    private NodeHost? FindLeader(int shard)
    {
        NodeHost? best = null;
        long bestTerm = -1;
        int hint = 0;
        foreach (var n in _nodes)
        {
            if (n is null || !n.IsRunning || !n.Status.TryGetValue(shard, out var st)) continue;
            if (st.Role == RaftRole.Leader && st.Term > bestTerm)
            {
                best = n;
                bestTerm = st.Term;
            }
            else if (st.Leader != 0) hint = st.Leader;
        }
        if (best is not null) return best;
        return hint != 0 ? _nodes[hint - 1] : null;
    }

    private ReplicationKey ToKey(StoredKey k, int shard) => new(k.Key, k.Value, k.Version, shard, k.ModifiedIndex) { Cluster = Name };

    private static TimeSpan Remaining(long deadline) =>
        TimeSpan.FromSeconds((deadline - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency);
}
