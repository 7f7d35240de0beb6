using Replication.Engine.Transport;
using System.Diagnostics;
using Replication.Engine.Raft;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// The control loop: every <see cref="ControlInterval"/>, on every node, bring what this node does in
/// line with the replicated metadata (<see cref="ClusterMetadata"/>, applied by the metadata group):
/// <list type="number">
/// <item>transport peers: every registered node's endpoint (SetPeer);</item>
/// <item>hosted groups: every shard the placement puts on this node is hosted; one not hosted yet is
/// created as a joining replica (empty configuration), to be added by its leader;</item>
/// <item>on the metadata leader: the founding node writes the initial metadata (identity, itself,
/// every shard placed on it); then the placement controller (<see cref="PlacementPolicy"/>: the ring) writes the
/// placement changes it wants through the metadata log, and deregisters leaving nodes that hold nothing any more; and a node being rebuilt that reported its rebuild
/// done is let back in (ClusterNode.Rebuild.cs);</item>
/// <item>on every group this node leads (metadata and shards): the next membership change toward what
/// the metadata says (<see cref="MembershipPlan"/>: learner, catch up, promote; nodes being rebuilt are
/// removed), one at a time,
/// asked again on the next pass when the core refuses (<see cref="RaftNode.LastConfChangeRefusal"/>);</item>
/// <item>this node's own registry entry: re-announced (a join with its token) when it restarted on another endpoint;</item>
/// <item>this node's own rebuild: once every group has removed it, it drops (or replaces) its data.</item>
/// </list>
/// Everything here is idempotent and level-triggered (it compares states, it does not replay events),
/// so a lost step, a leader change or a restart only delays it. Runs on a thread of its own, woken by a
/// change of the node's groups (NodeHost.WaitForChange) and at least every <see cref="ControlInterval"/> while
/// the cluster is settling, every <see cref="ControlIdleInterval"/> once it has settled (see <see cref="ControlLoop"/>).
/// </summary>
public sealed partial class ClusterNode
{
    private static readonly TimeSpan ControlInterval = TimeSpan.FromMilliseconds(100);
    /// <summary>
    /// The pass interval of a settled node: no change of its groups and no membership change proposed or refused for
    /// <see cref="ControlSettleTime"/>. Each pass wakes the thread pool (a timer and its continuations), whose workers
    /// spin before they sleep: 10 passes a second were a visible share of an idle node's CPU (bench finding).
    /// </summary>
    private static readonly TimeSpan ControlIdleInterval = TimeSpan.FromSeconds(1);
    /// <summary>How long after the last change or membership step the loop keeps passing every <see cref="ControlInterval"/>.</summary>
    private static readonly TimeSpan ControlSettleTime = TimeSpan.FromSeconds(3);
    /// <summary>Least time between two passes, however often the groups change (a burst of elections, a busy metadata group).</summary>
    private static readonly TimeSpan ControlDebounce = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan ControlStepTimeout = TimeSpan.FromSeconds(5);
    private readonly Dictionary<int, string> _appliedPeers = new();
    private readonly Dictionary<int, string> _lastRefusal = new();
    private long _metadataApplied = -1;
    private long _nextPlacement;

    /// <summary>Starts <see cref="ControlLoop"/> on a thread of its own; the task completes when the loop has ended.</summary>
    private Task StartControlLoop()
    {
        var ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var ct = _background.Token;
        new Thread(() =>
        {
            try { ControlLoop(ct); }
            finally { ended.TrySetResult(); }
        }) { IsBackground = true, Name = $"replication-control-{NodeId}" }.Start();
        return ended.Task;
    }

    /// <summary>
    /// Passes every <see cref="ControlInterval"/> while something is going on, and every <see cref="ControlIdleInterval"/>
    /// once nothing has for <see cref="ControlSettleTime"/>: a change of the node's groups (which also wakes the loop at
    /// once), a membership change proposed or refused (a learner catching up is polled, nothing signals it), or a failed
    /// step counts as something. What a settled node may still have to act on without a change of its own groups (a
    /// peer's report, read by placement and leader balancing) waits at most the idle interval.
    /// <para>
    /// On a thread of its own, which waits without a timer (NodeHost.WaitForChange) and runs a pass that has nothing to
    /// await without the thread pool: an async loop's every pass was a timer firing and a thread-pool work item, whose
    /// workers spin before they sleep, and on a quiet node those pass-a-second wakes were a third of its CPU (bench
    /// finding, issue 11). A pass that awaits (a proposal, a peer's answer) blocks this thread meanwhile, as the loop
    /// awaited it before.
    /// </para>
    /// </summary>
    private void ControlLoop(CancellationToken ct)
    {
        long activeUntil = 0;
        while (!ct.IsCancellationRequested)
        {
            _controlActive = false;
            try
            {
                ReconcileAsync(ct).GetAwaiter().GetResult();
            }
            catch (Exception e)
            {
                // One catch, not two filters: with "when (cancelled)" then "when (!cancelled)", a stop that cancels between
                // the two evaluations left the exception unhandled on this thread, which ended the process (a suite run:
                // "Node 1 is stopping" from a step as the node stopped took the test host down).
                if (ct.IsCancellationRequested) return; // stopping: whatever the last step ran into (the node refusing work as it stops) ends the loop
                _controlActive = true;
                if (e is not (Cluster.RetryableException or TimeoutException or ReplicationException)) Log($"node {NodeId}: control step failed: {e}");
            }
            long now = Stopwatch.GetTimestamp();
            if (_controlActive) activeUntil = now + (long)(ControlSettleTime.TotalSeconds * Stopwatch.Frequency);
            var interval = now < activeUntil ? ControlInterval : ControlIdleInterval;
            if (_host.WaitForChange(interval, ct))
            {
                activeUntil = Stopwatch.GetTimestamp() + (long)(ControlSettleTime.TotalSeconds * Stopwatch.Frequency);
                if (ct.WaitHandle.WaitOne(ControlDebounce)) return;
            }
        }
    }

    /// <summary>Set by a pass that proposed or was refused a membership change (the control loop stays in its fast pace).</summary>
    private bool _controlActive;

    private async Task ReconcileAsync(CancellationToken ct)
    {
        if (_awaitingRebuild)
        {
            await AwaitRebuildAsync(ct).ConfigureAwait(false);
            return;
        }
        RefreshMetadata(force: false);
        var metadata = _metadata;
        ApplyPeers(metadata);
        RememberPeers(metadata);

        var status = _host.Status;
        // A learner-only node (an asynchronous replica) follows every shard, placed on it or not: each shard's leader adds
        // it as a learner (DesiredLearners), and it must host the group to receive the entries.
        bool learnerOnly = metadata.DesiredLearners().Contains(NodeId);
        // Each as the member id the metadata gave this node's replica there (ReplicaIds); one this node already dropped is
        // refused by the host (its tombstone) until the metadata names a newer one. None while this node is being rebuilt:
        // its replicas come back under the new ids its let-back writes (a node started with its stores discarded has no
        // tombstones to stop it from hosting an old id).
        bool rebuilding = metadata.IsRebuilding(NodeId);
        foreach (var (shard, replicas) in metadata.Placement)
            if ((replicas.Contains(NodeId) || learnerOnly) && !rebuilding && !status.ContainsKey(shard) && metadata.MapOr(ShardCount).Contains(shard)
                && await _host.AddGroupAsync(shard, metadata.MemberIdOf(shard, NodeId), bootstrapVoters: null).ConfigureAwait(false))
                Log($"node {NodeId}: hosting shard {shard} (joining, replica {ReplicaIds.IncarnationOf(metadata.MemberIdOf(shard, NodeId))}.{NodeId})");

        const int meta = ClusterMetadata.MetadataGroup;
        if (status.TryGetValue(meta, out var metaStatus) && metaStatus.Role == RaftRole.Leader)
        {
            if (metadata.Cluster is null)
            {
                if (NodeId == 1) await WriteInitialMetadataAsync(ct).ConfigureAwait(false);
                return;
            }
            // The shards' memberships come from status reports, which change once per StatusInterval: placing more often
            // than that would rebuild the ring and every shard's view for nothing.
            bool place = Stopwatch.GetTimestamp() >= _nextPlacement;
            if (place) _nextPlacement = Stopwatch.GetTimestamp() + (long)(StatusInterval.TotalSeconds * Stopwatch.Frequency);
            var current = place ? CurrentMemberships() : new Dictionary<int, Ring.ShardPlacement>();
            var changes = place ? PlacementPolicy.Changes(metadata, current) : Array.Empty<(int, int[])>();
            if (changes.Count > 0)
            {
                // A node placed on a shard it is not placed on now gets a new replica id there, in the same entry: it may have
                // held the shard before and dropped it, and must come back as a new member (ReplicaIds).
                var ops = new List<KvOp>();
                foreach (var change in changes)
                {
                    ops.Add(new KvOp(KvOpType.Put, ClusterMetadata.PlacementKey(change.Shard), System.Text.Json.JsonSerializer.Serialize(change.Replicas, ClusterMetadata.Json), null));
                    if (metadata.NewReplicaIds(change.Shard, change.Replicas.Except(metadata.ReplicasOf(change.Shard))) is { } ids) ops.Add(ids);
                }
                await ProposeMetadataAsync(ops, ControlStepTimeout, ct).ConfigureAwait(false);
                foreach (var change in changes)
                {
                    Log($"node {NodeId}: shard {change.Shard} placed on [{string.Join(",", change.Replicas)}]");
                    RecordEvent(ReplicationEventType.ShardPlaced, $"The ring placed shard {change.Shard} on nodes {string.Join(", ", change.Replicas)} (it was on {string.Join(", ", metadata.ReplicasOf(change.Shard).DefaultIfEmpty())}).", change.Shard);
                }
                RefreshMetadata(force: true);
                metadata = _metadata;
            }
            var drained = place ? PlacementPolicy.Drained(metadata, current) : Array.Empty<int>();
            if (drained.Count > 0)
            {
                await ProposeMetadataAsync(drained.Select(id => new KvOp(KvOpType.Delete, ClusterMetadata.NodeKey(id), null, null)).ToArray(), ControlStepTimeout, ct).ConfigureAwait(false);
                foreach (int id in drained)
                {
                    Log($"node {NodeId}: node {id} holds no replica any more: deregistered");
                    RecordEvent(ReplicationEventType.NodeRemoved, $"Node {id} left the cluster: it holds no replica any more and was deregistered.");
                }
                RefreshMetadata(force: true);
                metadata = _metadata;
            }
            await LetRebuiltNodesBackAsync(metadata, ct).ConfigureAwait(false);
            await SplitLargeShardsAsync(metadata, ct).ConfigureAwait(false);
        }
        if (metadata.Cluster is null) return;

        foreach (var (group, st) in status)
        {
            if (st.Role != RaftRole.Leader) continue;
            // Member ids (ReplicaIds): the metadata group's are its nodes' ids; a data shard's come from the metadata.
            IReadOnlyList<int> voters, learners;
            if (group == meta) (voters, learners) = metadata.MetadataMembership();
            else
            {
                if (metadata.ReplicasOf(group).Count == 0) continue; // no placement yet: leave the founding membership alone
                voters = metadata.DesiredVoterMembers(group);
                learners = metadata.DesiredLearnerMembers(group);
                if (voters.Count == 0) continue; // every replica is being rebuilt: nobody to hand the group to
            }
            if (MembershipPlan.Next(st.MemberVoters, st.MemberLearners, voters, learners, st.AcknowledgedMembers) is not { } cc) continue;
            if (cc.Type == ConfChangeType.AddLearner && !metadata.Nodes.ContainsKey(ReplicaIds.NodeOf(cc.NodeId))) continue;
            var (index, refusal) = await _host.ProposeConfChangeAsync(group, cc).ConfigureAwait(false);
            _controlActive = true;
            string note = index != 0 ? "" : refusal ?? "refused";
            if (index != 0) Log($"node {NodeId}: group {group}: proposed {cc} at index {index}");
            else if (!_lastRefusal.TryGetValue(group, out var last) || last != note) Log($"node {NodeId}: group {group}: {cc} refused for now ({note})");
            _lastRefusal[group] = note;
        }

        if (metadata.Nodes.TryGetValue(NodeId, out var self) && self.Endpoint != Endpoint)
        {
            await JoinAsync(Endpoint, _identity.JoinToken, self.Learner ? NodeRole.Learner : NodeRole.Voter, self.Zone, ct).ConfigureAwait(false);
            RefreshMetadata(force: true);
        }
        await CarryOutOwnRebuildAsync(ct).ConfigureAwait(false);
        await AddMissingSplitsAsync(ct).ConfigureAwait(false);
        await DropLeftGroupsAsync(metadata).ConfigureAwait(false);
        BalanceLeaders(metadata);
    }

    /// <summary>The founding node, once it leads the metadata group: identity and shape, itself, and every shard on itself.</summary>
    private async Task WriteInitialMetadataAsync(CancellationToken ct)
    {
        var info = _identity.Cluster!;
        var ops = new List<KvOp>
        {
            new(KvOpType.Put, ClusterMetadata.ClusterKey, System.Text.Json.JsonSerializer.Serialize(info, ClusterMetadata.Json), 0),
            PutNode(NodeId, new NodeEntry(Endpoint, _identity.JoinToken), expectedVersion: null),
        };
        for (int shard = 0; shard < info.ShardCount; shard++)
            ops.Add(new KvOp(KvOpType.Put, ClusterMetadata.PlacementKey(shard), "[1]", null));
        ops.Add(new KvOp(KvOpType.Put, ClusterMetadata.ShardMapKey, Ring.ShardRangeMap.Even(info.ShardCount).ToJson(), null));
        ops.Add(new KvOp(KvOpType.Put, ClusterMetadata.NextShardKey, info.ShardCount.ToString(System.Globalization.CultureInfo.InvariantCulture), null));
        await ProposeMetadataAsync(ops, ControlStepTimeout, ct).ConfigureAwait(false);
        RefreshMetadata(force: true);
        Log($"node {NodeId}: founded cluster '{info.Name}' ({info.Id}): {info.ShardCount} shards, replication factor {info.ReplicationFactor}");
    }

    /// <summary>Re-reads the metadata from the local replica when its applied index moved (or when forced).</summary>
    private void RefreshMetadata(bool force)
    {
        if (!_host.Status.TryGetValue(ClusterMetadata.MetadataGroup, out var st)) return;
        long applied = st.Applied;
        if (!force && applied == Interlocked.Read(ref _metadataApplied)) return;
        var local = ClusterMetadata.Read(_host.Store);
        // Until this replica has caught up, keep what the join answer said.
        if (local.Cluster is not null)
        {
            _metadata = local;
            Interlocked.Exchange(ref _metadataRefreshed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        }
        Interlocked.Exchange(ref _metadataApplied, applied);
    }

    private TaskCompletionSource _metadataRefreshed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes once <see cref="RefreshMetadata"/> next re-reads the metadata, or after <paramref name="timeout"/>, or when
    /// <paramref name="ct"/> is cancelled; never faults.</summary>
    private Task WaitForMetadataAsync(TimeSpan timeout, CancellationToken ct) =>
        Volatile.Read(ref _metadataRefreshed).Task.WaitAsync(timeout, ct).ContinueWith(_ => { }, TaskScheduler.Default);

    /// <summary>Saves the registry's endpoints in node.json when they changed (see <see cref="NodeIdentity.Peers"/>).</summary>
    private void RememberPeers(ClusterMetadata metadata)
    {
        if (metadata.Nodes.Count == 0) return;
        var peers = metadata.Nodes.Where(n => n.Key != NodeId).ToDictionary(n => n.Key, n => n.Value.Endpoint);
        var known = _identity.Peers;
        if (peers.Count == known.Count && peers.All(p => known.TryGetValue(p.Key, out var e) && e == p.Value)) return;
        _identity = _identity with { Peers = peers };
        _identity.Save(_options.Path);
    }

    /// <summary>Keeps the transport's peers in line with the registry (and siblings' hints, ClusterNode.HintPeer).</summary>
    private void ApplyPeers(ClusterMetadata metadata)
    {
        lock (_appliedPeers)
        {
            foreach (int id in metadata.Nodes.Keys.Concat(_peerHints.Keys).Distinct())
            {
                if (id == NodeId || EndpointOf(id) is not { } endpoint) continue;
                if (_appliedPeers.TryGetValue(id, out var known) && known == endpoint) continue;
                if (ResolvePeer(endpoint) is not { } endPoint) continue;
                _host.SetPeer(id, endPoint);
                _appliedPeers[id] = endpoint;
            }
        }
    }

    private System.Net.IPEndPoint? ResolvePeer(string endpoint)
    {
        try
        {
            switch (Client.ClientConnection.ParseEndpoint(endpoint))
            {
                case System.Net.IPEndPoint ip: return ip;
                case System.Net.DnsEndPoint dns:
                    var address = System.Net.Dns.GetHostAddresses(dns.Host).FirstOrDefault();
                    return address is null ? null : new System.Net.IPEndPoint(address, dns.Port);
                default: return null;
            }
        }
        catch (Exception e) when (e is FormatException or System.Net.Sockets.SocketException)
        {
            Log($"node {NodeId}: cannot resolve peer endpoint {endpoint}: {e.Message}");
            return null;
        }
    }
}
