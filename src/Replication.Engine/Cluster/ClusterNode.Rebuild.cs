using Replication.Engine.Client;
using Replication.Engine.Raft;
using Replication.Engine.Storage;
using Replication.Engine.Transport;

namespace Replication.Engine.Cluster;

/// <summary>
/// Rebuilding a node (Restore-ReplicationNode): from its peers, or from its own cold backup. Never by putting
/// files back under a live member — a voter that forgets what it acknowledged can let a committed write be
/// lost — but by membership change, so no term or vote goes back in time:
/// <list type="number">
/// <item>the coordinator checks that every group keeps a running quorum without the node, then marks it
/// Rebuilding in the metadata (with a new epoch, and the id of an uploaded cold backup, if any);</item>
/// <item>every leader removes it from its group (the metadata's desired membership leaves it out), the
/// metadata group included;</item>
/// <item>the node, once the leaders of all its groups report it gone, drops each group's data — or replaces it
/// with the backup's state machine and committed log — and records the epoch as carried out (node.json);</item>
/// <item>the metadata leader, seeing that report, clears the mark; the leaders add the node back as a learner,
/// it catches up (from the log, or a snapshot), and it is promoted.</item>
/// </list>
/// Every step is level-triggered and idempotent (ClusterNode.Control.cs), so a crash anywhere only delays the
/// next one. A node that cannot start at all (damaged files) is started with its stores discarded
/// (<see cref="NodeOptions.DiscardStores"/>) and then takes the same path.
/// </summary>
public sealed partial class ClusterNode
{
    /// <summary>The coordinator: checks quorums, then marks the node (it does not wait for the rebuild).</summary>
    private async Task<RebuildAnswer> RebuildNodeAsync(RebuildArgs args, CancellationToken ct)
    {
        var metadata = _metadata;
        if (!metadata.Nodes.ContainsKey(args.Node)) throw new NodeNotFoundException(args.Node) { Target = args.Node };
        await EnsureFreshAsync(metadata.Nodes.Keys, ct).ConfigureAwait(false);
        var shards = GetShards();
        foreach (var shard in shards.Where(s => s.Voters.Contains(args.Node)))
        {
            // The removal commits in the new configuration: a majority of the remaining voters must be running.
            int remaining = shard.Voters.Count - 1;
            int running = shard.Voters.Count(v => v != args.Node && IsRunningNode(v));
            if (remaining == 0 || running < remaining / 2 + 1) throw new QuorumAtRiskException(args.Node, shard.Id) { Target = args.Node };
        }
        var timeout = TimeSpan.FromMilliseconds(args.TimeoutMs);
        long epoch = await RouteAsync(ClusterMetadata.MetadataGroup, Deadline(timeout), idempotent: false,
            local: remaining => MarkRebuildingAsync(args.Node, args.Upload, remaining, ct),
            remote: async (target, remaining) => long.Parse((await CallAdminAsync<RebuildAnswer>(target, AdminOps.NodeMark, new RebuildArgs(args.Node, args.Upload, (long)remaining.TotalMilliseconds), remaining + NetworkMargin, ct).ConfigureAwait(false)).Answer.State),
            why => new QuorumUnavailableException(ClusterMetadata.MetadataGroup, timeout, $"the metadata group could not mark node {args.Node}: {why}"), ct).ConfigureAwait(false);
        Log($"node {NodeId}: node {args.Node} marked for rebuild (epoch {epoch}{(args.Upload is Guid u ? $", from upload {u:N}" : "")})");
        return new RebuildAnswer(epoch.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// The coordinator's answer to "is rebuild <paramref name="args"/> done": the node reports it carried it out, the
    /// metadata no longer marks it, and the CURRENT leader of every shard placed on it counts it as a voter (asked now,
    /// not read from possibly older status reports, which could still show it from before it was taken out).
    /// </summary>
    private async Task<RebuiltAnswer> RebuiltAsync(RebuiltArgs args, CancellationToken ct)
    {
        var metadata = _metadata;
        if (!metadata.Nodes.TryGetValue(args.Node, out var entry)) throw new NodeNotFoundException(args.Node) { Target = args.Node };
        if (entry.RebuildEpoch < args.Epoch || entry.Rebuilding)
            return new RebuiltAnswer(false, $"node {args.Node} is out of its groups, dropping its data and rejoining");
        await EnsureFreshAsync(new[] { args.Node }, ct).ConfigureAwait(false);
        long done = args.Node == NodeId ? _identity.RebuiltEpoch : ReportedNode(args.Node)?.RebuiltEpoch ?? -1;
        if (done < args.Epoch) return new RebuiltAnswer(false, $"node {args.Node} has not reported the rebuild done");
        var placed = ShardIds.Where(s => metadata.ReplicasOf(s).Contains(args.Node)).ToArray();
        int back = 0;
        foreach (int shard in placed)
        {
            var voters = await RouteAsync(shard, Deadline(TimeSpan.FromSeconds(5)), idempotent: true,
                local: _ => Task.FromResult(LeaderVoters(shard)),
                remote: async (target, remaining) => (await CallAdminAsync<ShardVotersAnswer>(target, AdminOps.ShardVoters, new ShardArgs(shard), remaining + NetworkMargin, ct).ConfigureAwait(false)).Answer,
                why => new QuorumUnavailableException(shard, TimeSpan.FromSeconds(5), why) { Target = shard }, ct).ConfigureAwait(false);
            if (voters.Voters.Contains(args.Node)) back++;
        }
        return back == placed.Length
            ? new RebuiltAnswer(true, $"node {args.Node} is a voter of its {placed.Length} shards again")
            : new RebuiltAnswer(false, $"node {args.Node} is back as a voter of {back} of its {placed.Length} shards");
    }

    /// <summary>On the leader of a shard: its voters and learners now (not the leader: retryable, with a hint).</summary>
    private ShardVotersAnswer LeaderVoters(int shard)
    {
        if (!_host.Status.TryGetValue(shard, out var st) || st.Role != RaftRole.Leader)
            throw new RetryableException($"node {NodeId} is not the leader of shard {shard}", st?.Leader ?? 0);
        return new ShardVotersAnswer(st.Voters, st.Learners);
    }

    /// <summary>On the metadata leader: sets the node's Rebuilding mark with the next epoch; returns the epoch.</summary>
    private async Task<long> MarkRebuildingAsync(int node, Guid? upload, TimeSpan timeout, CancellationToken ct)
    {
        if (!_host.Status.TryGetValue(ClusterMetadata.MetadataGroup, out var st) || st.Role != RaftRole.Leader)
            throw new RetryableException($"node {NodeId} does not lead the metadata group", st?.Leader ?? 0);
        await _host.ConfirmReadAsync(ClusterMetadata.MetadataGroup, lease: false).WaitAsync(timeout, ct).ConfigureAwait(false);
        RefreshMetadata(force: true);
        var entry = _metadata.Nodes.TryGetValue(node, out var e) ? e : throw new NodeNotFoundException(node) { Target = node };
        long epoch = entry.RebuildEpoch + 1;
        await ProposeMetadataAsync(new[] { PutNode(node, entry with { Rebuilding = true, RebuildEpoch = epoch, RebuildUpload = upload }, expectedVersion: null) }, timeout, ct).ConfigureAwait(false);
        RefreshMetadata(force: true);
        return epoch;
    }

    /// <summary>On the metadata leader (control loop): clears the mark of every node that reported its rebuild carried out.</summary>
    private async Task LetRebuiltNodesBackAsync(ClusterMetadata metadata, CancellationToken ct)
    {
        foreach (var (id, entry) in metadata.Nodes)
        {
            if (!entry.Rebuilding) continue;
            long done = id == NodeId ? _identity.RebuiltEpoch : ReportedNode(id)?.RebuiltEpoch ?? -1;
            if (done < entry.RebuildEpoch) continue;
            // Its replicas come back as new members of their groups (ReplicaIds): its old ones were dropped with their data.
            var ops = new List<KvOp> { PutNode(id, entry with { Rebuilding = false, RebuildUpload = null }, expectedVersion: null) };
            foreach (var range in metadata.MapOr(ShardCount).Ranges)
                if (metadata.NewReplicaIds(range.Shard, new[] { id }) is { } op) ops.Add(op);
            await ProposeMetadataAsync(ops, ControlStepTimeout, ct).ConfigureAwait(false);
            RefreshMetadata(force: true);
            Log($"node {NodeId}: node {id} rebuilt (epoch {entry.RebuildEpoch}); adding it back to its groups");
        }
    }

    /// <summary>
    /// On the node being rebuilt (control loop): when a rebuild newer than the last one carried out is asked for
    /// it, and the leaders of all its groups report it out of their membership, it drops (or replaces) its data.
    /// The mark may come from its own metadata replica or, once it was removed from the metadata group, from
    /// peers' reports about it.
    /// </summary>
    private async Task CarryOutOwnRebuildAsync(CancellationToken ct)
    {
        var (rebuilding, epoch, upload) = RebuildAskedOfMe();
        if (!rebuilding || epoch <= _identity.RebuiltEpoch) return;
        var hosted = _host.Status.Keys.ToArray();
        if (!RemovedEverywhere()) return; // not yet: the leaders are still removing it
        string? import = upload is Guid u ? System.IO.Path.Combine(_options.Path, UploadFolderPrefix + u.ToString("N")) : null;
        if (import is not null && !(File.Exists(System.IO.Path.Combine(import, "raft.db")) && File.Exists(System.IO.Path.Combine(import, "state.db"))))
        {
            Log($"node {NodeId}: the uploaded backup {upload:N} for this rebuild is not here; rebuilding from peers instead");
            import = null;
        }
        foreach (int group in hosted)
        {
            ct.ThrowIfCancellationRequested();
            bool data = group != ClusterMetadata.MetadataGroup;
            await _host.ReplaceGroupDataAsync(group, data ? import : null).ConfigureAwait(false);
            // A joining replica until a leader adds it back. A data shard's replica comes back as a new member once the
            // metadata gave it a new id (LetRebuiltNodesBackAsync): its old id is tombstoned here, so until then it waits.
            await _host.AddGroupAsync(group, data ? _metadata.MemberIdOf(group, NodeId) : NodeId, bootstrapVoters: null).ConfigureAwait(false);
        }
        _identity = _identity with { RebuiltEpoch = epoch };
        _identity.Save(_options.Path);
        if (import is not null) EndHeld(upload!.Value);
        Log($"node {NodeId}: rebuild {epoch} carried out: {hosted.Length} group(s) {(import is null ? "dropped; they come back from the peers" : "replaced from the uploaded cold backup")}");
    }

    /// <summary>The rebuild asked of this node: from its metadata replica, or the freshest peer report about it.</summary>
    private (bool Rebuilding, long Epoch, Guid? Upload) RebuildAskedOfMe()
    {
        var best = _metadata.Nodes.TryGetValue(NodeId, out var own) ? (own.Rebuilding, own.RebuildEpoch, own.RebuildUpload) : (false, 0L, (Guid?)null);
        foreach (var (_, report) in FreshReports())
        {
            if (report.Nodes.FirstOrDefault(n => n.Id == NodeId) is { } me && me.RebuildEpoch > best.Item2)
                best = (me.Rebuilding, me.RebuildEpoch, me.RebuildUpload);
        }
        return best;
    }

    /// <summary>True when a fresh report from the current leader of <paramref name="group"/> shows this node out of the
    /// membership it committed (see <see cref="RemovedFrom(int, int)"/>).</summary>
    private bool RemovedFrom(int group)
    {
        var view = LeaderView(group);
        if (view is null) return false;
        return view.Members is { } members ? !members.Any(m => ReplicaIds.NodeOf(m) == NodeId) : !view.Voters.Contains(NodeId) && !view.Learners.Contains(NodeId);
    }

    /// <summary>True when a fresh report from the current leader of <paramref name="group"/> shows replica
    /// <paramref name="member"/> (this node's, ReplicaIds) out of the membership it committed — a newer replica of this node
    /// may be in it. Committed, not latest: a removal the leader appended takes effect there at once but is not final until
    /// it commits; a leader change can replace it, and a replica dropped on it was a member still, gone for good (found by
    /// the simulator, seed 1817: the group lost the quorum it counted on). A leader that reports no member ids (an older
    /// version) is read by node, from its latest membership, as before.</summary>
    private bool RemovedFrom(int group, int member)
    {
        var view = LeaderView(group);
        if (view is null) return false;
        return view.Members is { } members ? !members.Contains(member) : !view.Voters.Contains(NodeId) && !view.Learners.Contains(NodeId);
    }

    /// <summary>The freshest report of <paramref name="group"/> from a node that leads it; null when none.</summary>
    private ReplicationShard? LeaderView(int group) => FreshReports()
        .Select(r => r.Report.Shards.FirstOrDefault(s => s.Id == group && s.Leader == r.Node))
        .Where(v => v is not null).OrderByDescending(v => v!.Term).FirstOrDefault();

    /// <summary>True when the current leader of every shard and of the metadata group reports this node out of its membership.</summary>
    private bool RemovedEverywhere() =>
        ShardIds.Append(ClusterMetadata.MetadataGroup).All(RemovedFrom);

    /// <summary>True while a node started with its stores discarded waits to be taken out of every group.</summary>
    private volatile bool _awaitingRebuild;
    private DateTime _lastRebuildRequest = DateTime.MinValue;

    /// <summary>
    /// A node started with its stores discarded (<see cref="NodeOptions.DiscardStores"/>): it asks a peer to mark it
    /// for rebuild (unless one already did), waits until no leader counts it in its group any more, then records the
    /// rebuild as carried out and rejoins the metadata group as a new replica (the rest follows from the metadata).
    /// </summary>
    private async Task AwaitRebuildAsync(CancellationToken ct)
    {
        ApplyPeers(_metadata);
        if (!FreshReports().Any()) return; // nothing known of the cluster yet: not even whether it is marked already
        var (rebuilding, epoch, _) = RebuildAskedOfMe();
        if (!rebuilding || epoch <= _identity.RebuiltEpoch)
        {
            if (DateTime.UtcNow - _lastRebuildRequest < TimeSpan.FromSeconds(2)) return;
            _lastRebuildRequest = DateTime.UtcNow;
            foreach (var (peer, _) in FreshReports())
            {
                try
                {
                    await CallAdminAsync<RebuildAnswer>(peer, AdminOps.NodeRebuild, new RebuildArgs(NodeId, null, 10_000), TimeSpan.FromSeconds(15), ct).ConfigureAwait(false);
                    Log($"node {NodeId}: asked node {peer} to mark it for rebuild");
                    return;
                }
                catch (Exception e) when (e is ReplicationException or TimeoutException or PeerUnreachableException or ConnectionLostException && !ct.IsCancellationRequested)
                {
                    Log($"node {NodeId}: node {peer} could not mark it for rebuild yet: {e.Message}");
                }
            }
            return;
        }
        // Out of EVERY group: each shard and the metadata group must have a current leader that reports this node out of
        // its membership. A group with no such report (no leader right now, or none reported yet) means "not yet":
        // an empty node must never be counted as the voter it was.
        if (!RemovedEverywhere()) return;
        _identity = _identity with { RebuiltEpoch = epoch };
        _identity.Save(_options.Path);
        _awaitingRebuild = false;
        await _host.AddGroupAsync(ClusterMetadata.MetadataGroup, NodeId, bootstrapVoters: null).ConfigureAwait(false);
        Log($"node {NodeId}: rebuild {epoch} carried out (stores discarded at start); rejoining as a new replica");
    }
}
