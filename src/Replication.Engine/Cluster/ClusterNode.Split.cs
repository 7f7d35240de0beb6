using Replication.Engine.Client;
using Replication.Engine.Raft;
using Replication.Engine.Ring;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// Splitting a shard in two at the middle of its hash range (Split-ReplicationShard, or by itself past
/// <see cref="ClusterInfo.SplitKeys"/> keys). No data crosses the network: a split is one entry in the shard's own log
/// (<see cref="ShardCommand"/>), applied at the same index on every replica, which moves the rows of the right half to
/// the new shard in the same state machine and creates the new shard's Raft group with the same replicas
/// (NodeHost.CreateSplitGroups, KvStore.ApplySplit). The steps:
/// <list type="number">
/// <item>the metadata leader takes the new shard's id by compare-and-set on <c>nextshard</c> (two splits never share one),
/// and splits one shard at a time;</item>
/// <item>the shard's leader proposes the split entry; once it is applied the left half is the shard's, and an entry
/// proposed with an older map for a key of the right half is refused at apply (WrongShard: nothing written, the
/// router retries with the newer map);</item>
/// <item>the shard map in the metadata gets the new shard, and its placement is the old shard's: routers switch.</item>
/// </list>
/// A crash between the steps is mended by any node holding a split shard the metadata does not list yet (control loop:
/// <see cref="AddMissingSplitsAsync"/>). Keys, versions and linearizability are unaffected: every key lives in exactly
/// one shard at every index, and a read reaching a shard that no longer owns the key is refused and routed again.
/// </summary>
public sealed partial class ClusterNode
{
    private readonly SemaphoreSlim _splitGate = new(1, 1);
    /// <summary>Ids this node took for splits it coordinates, by the shard and range split (guarded by _splitGate).</summary>
    private readonly Dictionary<(int Shard, ulong Start, ulong Last), int> _splitIds = new();
    private static readonly TimeSpan SplitTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Splits a shard, from any node (routed to the metadata leader). Returns the two halves. Idempotent (<see cref="SplitArgs"/>).</summary>
    internal Task<SplitAnswer> SplitShardAsync(SplitArgs args, CancellationToken ct)
    {
        var timeout = TimeSpan.FromMilliseconds(Math.Clamp(args.TimeoutMs, 1, (long)SplitTimeout.TotalMilliseconds * 10));
        return RouteAsync(ClusterMetadata.MetadataGroup, Deadline(timeout), idempotent: true,
            local: _ => ForwardContext.RunAsOriginAsync(() => CoordinateSplitAsync(args.Shard, (args.ExpectStart, args.ExpectLast), ct)),
            remote: async (target, remaining) => (await CallAdminAsync<SplitAnswer>(target, AdminOps.ShardSplit, args, remaining + NetworkMargin, ct).ConfigureAwait(false)).Answer,
            why => new QuorumUnavailableException(ClusterMetadata.MetadataGroup, timeout, $"the split of shard {args.Shard} could not be coordinated: {why}") { Target = args.Shard }, ct);
    }

    /// <summary>
    /// On the metadata leader: one split at a time, from taking the id to growing the map. With <paramref name="expect"/>,
    /// only a shard that owns exactly that range splits; one already split from it answers the split that happened.
    /// </summary>
    private async Task<SplitAnswer> CoordinateSplitAsync(int shard, (ulong Start, ulong Last)? expect, CancellationToken ct)
    {
        if (!_host.Status.TryGetValue(ClusterMetadata.MetadataGroup, out var st) || st.Role != RaftRole.Leader)
            throw new RetryableException($"node {NodeId} does not lead the metadata group", st?.Leader ?? 0);
        await _splitGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await _host.ConfirmReadAsync(ClusterMetadata.MetadataGroup, lease: false).WaitAsync(SplitTimeout, ct).ConfigureAwait(false);
            RefreshMetadata(force: true);
            var map = Map;
            if (!map.Contains(shard)) throw new ShardNotFoundException(shard) { Target = shard };
            var range = map.RangeOf(shard);
            if (expect is var (start, last) && (range.Start != start || range.Last != last))
            {
                var half = map.Ranges.FirstOrDefault(r => r.Start == range.Last + 1 && r.Last == last && range.Start == start && range.Last < last);
                if (half.Last == last && half.Start > start)
                    return new SplitAnswer(shard, half.Shard, range.Start, range.Last, half.Start, half.Last, 0); // a retried request: split already
                throw new ClusterOptionsException(ClusterOptionsException.Invalid, $"Shard {shard} changed while the split was asked for (it owns [{range.Start:x16}, {range.Last:x16}] now); ask again.") { Target = shard };
            }
            if (!range.CanSplit) throw new ClusterOptionsException(ClusterOptionsException.Invalid, $"Shard {shard} owns a single hash and cannot split.") { Target = shard };
            if (map.Count >= ClusterOptions.MaxShardCount)
                throw new ClusterOptionsException(ClusterOptionsException.Invalid, $"The cluster holds {map.Count} shards, the most it can ({ClusterOptions.MaxShardCount}); shard {shard} does not split.") { Target = shard };

            // The new shard's id: compare-and-set on the counter, so a second coordinator (after a leader change) takes another.
            // A retry of a split this node coordinated before reuses the id it took: that attempt may have split the shard
            // already (its answer lost), and the split entry is idempotent for one id only.
            if (!_splitIds.TryGetValue((shard, range.Start, range.Last), out int newShard) || map.Contains(newShard))
            {
                var counter = _host.Store.Get(ClusterMetadata.MetadataGroup, ClusterMetadata.NextShardKey);
                newShard = Math.Max(_metadata.NextShard, map.Ranges.Max(r => r.Shard) + 1);
                var taken = await ProposeMetadataAsync(new[]
                {
                    new KvOp(KvOpType.Put, ClusterMetadata.NextShardKey, (newShard + 1).ToString(System.Globalization.CultureInfo.InvariantCulture), counter?.Version ?? 0),
                }, SplitTimeout, ct).ConfigureAwait(false);
                if (!taken[0].Applied) throw new RetryableException("the next shard id was taken meanwhile");
                _splitIds[(shard, range.Start, range.Last)] = newShard;
            }

            var halves = map.Split(shard, newShard);
            var left = halves.RangeOf(shard);
            var right = halves.RangeOf(newShard);
            var args = new SplitHereArgs(shard, newShard, left.Start, left.Last, right.Start, right.Last);
            // Idempotent: the leader proposes the entry only while the new shard does not exist, and a second entry for the
            // same id is refused at apply (KvStore.SplitApplies), so a request lost in a leader change is simply sent again.
            long index = await RouteAsync(shard, Deadline(SplitTimeout), idempotent: true,
                local: _ => SplitHereLocalAsync(args),
                remote: async (target, remaining) => (await CallAdminAsync<SplitAnswer>(target, AdminOps.ShardSplitHere, args, remaining + NetworkMargin, ct).ConfigureAwait(false)).Answer.Index,
                why => new QuorumUnavailableException(shard, SplitTimeout, $"the split could not be proposed: {why}") { Target = shard }, ct).ConfigureAwait(false);
            await AddSplitToMapLocalAsync(shard, newShard, ct).ConfigureAwait(false);
            Log($"node {NodeId}: shard {shard} split at index {index}: shard {newShard} owns [{right.Start:x16}, {right.Last:x16}]");
            RecordEvent(ReplicationEventType.ShardSplit, $"Shard {shard} split in two: shard {newShard} took the upper half of its hash range.", shard);
            return new SplitAnswer(shard, newShard, left.Start, left.Last, right.Start, right.Last, index);
        }
        finally
        {
            _splitGate.Release();
        }
    }

    private async Task<SplitAnswer> SplitHereAsync(SplitHereArgs args, CancellationToken ct)
    {
        long index = await SplitHereLocalAsync(args).ConfigureAwait(false);
        return new SplitAnswer(args.Shard, args.NewShard, args.LeftStart, args.LeftLast, args.RightStart, args.RightLast, index);
    }

    /// <summary>On the shard's leader: proposes the split entry and waits until it is applied here; returns its index.</summary>
    private async Task<long> SplitHereLocalAsync(SplitHereArgs args)
    {
        if (_host.Store.RangeOf(args.NewShard) is not null)
            return 0; // split already (a retried request): the map update follows
        var command = new ShardCommand(args.NewShard, args.LeftStart, args.LeftLast, args.RightStart, args.RightLast);
        var outcomes = await _host.ProposeAsync(args.Shard, new[] { command.Encode() }, WriteConcern.Majority).WaitAsync(SplitTimeout).ConfigureAwait(false);
        if (outcomes[0].Lost) throw new RetryableException($"the split entry of shard {args.Shard} was lost in a leader change");
        if (_host.Store.RangeOf(args.NewShard) is null)
            throw new RemoteOperationException("SplitRefused", ReplicationErrorKind.Conflict, $"Shard {args.Shard} did not split: its range is not the one the split was computed from.");
        return outcomes[0].Index;
    }

    private Task<Empty> AddSplitToMapAsync(MapAddArgs args, CancellationToken ct) =>
        RouteAsync(ClusterMetadata.MetadataGroup, Deadline(SplitTimeout), idempotent: true,
            local: async _ =>
            {
                await AddSplitToMapLocalAsync(args.Shard, args.NewShard, ct).ConfigureAwait(false);
                return new Empty();
            },
            remote: async (target, remaining) => (await CallAdminAsync<Empty>(target, AdminOps.ShardMapAdd, args, remaining + NetworkMargin, ct).ConfigureAwait(false)).Answer,
            why => new QuorumUnavailableException(ClusterMetadata.MetadataGroup, SplitTimeout, why), ct);

    /// <summary>On the metadata leader: the map gets the new shard (with the old shard's placement), unless it has it already.</summary>
    private async Task AddSplitToMapLocalAsync(int shard, int newShard, CancellationToken ct)
    {
        if (!_host.Status.TryGetValue(ClusterMetadata.MetadataGroup, out var st) || st.Role != RaftRole.Leader)
            throw new RetryableException($"node {NodeId} does not lead the metadata group", st?.Leader ?? 0);
        RefreshMetadata(force: true);
        var map = Map;
        if (map.Contains(newShard)) return;
        var current = _host.Store.Get(ClusterMetadata.MetadataGroup, ClusterMetadata.ShardMapKey);
        var grown = map.Split(shard, newShard);
        var ops = new List<KvOp>
        {
            new(KvOpType.Put, ClusterMetadata.ShardMapKey, grown.ToJson(), current?.Version ?? 0),
            new(KvOpType.Put, ClusterMetadata.PlacementKey(newShard), System.Text.Json.JsonSerializer.Serialize(_metadata.ReplicasOf(shard), ClusterMetadata.Json), null),
        };
        // The new group's replicas are the old one's, with their member ids (NodeHost.Consistency.cs): so are its ids here.
        if (_metadata.NewReplicaIds(newShard, Array.Empty<int>(), from: shard) is { } ids) ops.Add(ids);
        var results = await ProposeMetadataAsync(ops, SplitTimeout, ct).ConfigureAwait(false);
        if (!results[0].Applied) throw new RetryableException("the shard map changed meanwhile");
        RefreshMetadata(force: true);
    }

    /// <summary>
    /// Control loop, on every node: a split shard this node's state machine holds that the metadata's map does not list
    /// (the coordinator stopped between the split and the map update) is added to the map.
    /// </summary>
    private async Task AddMissingSplitsAsync(CancellationToken ct)
    {
        var map = Map;
        foreach (var (newShard, range) in _host.Store.SplitRanges)
        {
            if (map.Contains(newShard)) continue;
            var parent = map.Ranges.FirstOrDefault(r => r.Start <= range.Start && range.Last <= r.Last);
            if (parent.Last == 0 && parent.Start == 0 && !map.Contains(parent.Shard)) continue;
            var candidate = map.Split(parent.Shard, newShard).RangeOf(newShard);
            if (candidate.Start != range.Start || candidate.Last != range.Last) continue; // not this map's next split (yet)
            await AddSplitToMapAsync(new MapAddArgs(parent.Shard, newShard), ct).ConfigureAwait(false);
            Log($"node {NodeId}: shard {newShard} (split off shard {parent.Shard}) added to the shard map");
        }
    }

    private DateTime _lastAutoSplit = DateTime.MinValue;
    // Per shard: the commit index and time of the oldest sample inside the rate window (metadata leader only).
    private readonly Dictionary<int, Queue<(DateTime At, long Commit)>> _commitSamples = new();

    /// <summary>
    /// On the metadata leader (control loop): splits, one at a time and at most one every two seconds, a shard past the
    /// cluster's size threshold (<see cref="ClusterSettings.SplitKeys"/>) or write-rate threshold
    /// (<see cref="ClusterSettings.SplitWriteRate"/>: committed log entries per second over
    /// <see cref="ClusterSettings.SplitRateWindow"/>). Never past <see cref="ClusterOptions.MaxShardCount"/> shards.
    /// </summary>
    private async Task SplitLargeShardsAsync(ClusterMetadata metadata, CancellationToken ct)
    {
        if (metadata.Cluster is not { } info) return;
        var settings = info.SettingsOrDefault;
        if (settings.SplitKeys == 0 && settings.SplitWriteRate == 0) return;
        var now = DateTime.UtcNow;
        var shards = GetShards().Where(s => s.Leader != 0).ToArray();
        var rates = new Dictionary<int, double>();
        foreach (var s in shards)
        {
            if (!_commitSamples.TryGetValue(s.Id, out var samples)) _commitSamples[s.Id] = samples = new Queue<(DateTime, long)>();
            samples.Enqueue((now, s.CommitIndex));
            while (samples.Count > 2 && now - samples.Peek().At > ClusterSettings.SplitRateWindow) samples.Dequeue();
            var (at, commit) = samples.Peek();
            if (now - at >= ClusterSettings.SplitRateWindow / 2) rates[s.Id] = (s.CommitIndex - commit) / (now - at).TotalSeconds;
        }
        if (now - _lastAutoSplit < TimeSpan.FromSeconds(2) || Map.Count >= ClusterOptions.MaxShardCount) return;
        string? why = null;
        var pick = shards.Where(s => settings.SplitKeys > 0 && s.KeyCount > settings.SplitKeys && Map.RangeOf(s.Id).CanSplit)
            .OrderByDescending(s => s.KeyCount).FirstOrDefault();
        if (pick is not null) why = $"held {pick.KeyCount} keys (over {settings.SplitKeys})";
        else if (settings.SplitWriteRate > 0)
        {
            pick = shards.Where(s => rates.TryGetValue(s.Id, out double r) && r > settings.SplitWriteRate && Map.RangeOf(s.Id).CanSplit)
                .OrderByDescending(s => rates[s.Id]).FirstOrDefault();
            if (pick is not null) why = $"committed {rates[pick.Id]:0} entries/s (over {settings.SplitWriteRate:0.##})";
        }
        if (pick is null) return;
        _lastAutoSplit = now;
        var done = await CoordinateSplitAsync(pick.Id, expect: null, ct).ConfigureAwait(false);
        _commitSamples.Remove(pick.Id);
        Log($"node {NodeId}: shard {pick.Id} {why}: split, shard {done.NewShard} takes the right half");
    }
}
