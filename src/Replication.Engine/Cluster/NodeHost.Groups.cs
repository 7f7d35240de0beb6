using Replication.Engine.Transport;
using Replication.Engine.Raft;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// Changing what a running node hosts, for nodes whose groups are not fixed at start (one node per
/// process, Member/ClusterNode.cs): adding a Raft group while the loop runs, and proposing a
/// membership change to a group this node leads. The public methods are thread-safe; the work runs
/// on the loop thread between two iterations (a <see cref="LoopWork"/> in the inbox), so it never
/// races with a Ready being processed.
/// </summary>
internal sealed partial class NodeHost
{
    private Random? _groupRandom;
    /// <summary>Replicas AddGroup refused as tombstoned, each logged once (loop thread only).</summary>
    private readonly HashSet<(int Group, int Member)> _refusedReplicas = new();

    /// <summary>
    /// Starts hosting <paramref name="group"/> from what raft.db and state.db hold for it (a restart: as the member id
    /// recorded then), or as a new replica with member id <paramref name="member"/> (<see cref="ReplicaIds"/>), recorded
    /// durably before the core exists. A new replica with <paramref name="bootstrapVoters"/> founds the group with
    /// that membership, recorded durably as a membership-only snapshot at index 0 so every restart
    /// reads it back; without them it is a joining replica (empty configuration: it never campaigns
    /// and learns its membership from the leader, RaftNode.Membership.cs). Completes with false when
    /// the group is already hosted, or when <paramref name="member"/> is a replica this node has dropped (its tombstone:
    /// a removed replica never comes back under its old id).
    /// </summary>
    public Task<bool> AddGroupAsync(int group, int member, IReadOnlyList<int>? bootstrapVoters) =>
        RunOnLoopAsync(() => AddGroup(group, member, bootstrapVoters, null));

    /// <summary>The member id this node hosts <paramref name="group"/> as (0 when not hosted), and the group's tombstone
    /// (the highest member id of it dropped here). Thread-safe (runs on the loop).</summary>
    public Task<(int Member, int Removed)> ReplicaAsync(int group) => RunOnLoopAsync(() =>
        (_groups.TryGetValue(group, out var g) ? g.Core.Id : 0, _logStore!.Replica(group).Removed));

    /// <summary>The groups raft.db holds anything for (a restarting node hosts them all; what it no longer belongs to is
    /// dropped by its control loop). Thread-safe (runs on the loop).</summary>
    public Task<IReadOnlyList<int>> StoredGroupsAsync() => RunOnLoopAsync(() => _logStore!.Groups());

    /// <summary>
    /// Proposes one membership change to <paramref name="group"/> (this node must lead it). Completes
    /// with the entry's index, or 0 and the core's reason when refused (not leader, a change pending,
    /// a learner not caught up, ...): the caller retries later.
    /// </summary>
    public Task<(long Index, string? Refusal)> ProposeConfChangeAsync(int group, ConfChange change) =>
        RunOnLoopAsync(() =>
        {
            if (!_groups.TryGetValue(group, out var g)) return (0L, (string?)$"node {Id} does not host group {group}");
            long index = g.Core.ProposeConfChange(change);
            return (index, index == 0 ? g.Core.LastConfChangeRefusal : null);
        });

    /// <summary>
    /// Runs <paramref name="work"/> on the loop thread, holding the loop meanwhile: no store is written and no
    /// message handled until it returns, so the node's files are at rest (a cold copy). Its groups fall behind
    /// like those of a stopped node and catch up afterwards.
    /// </summary>
    public Task RunHeldAsync(Action work) => RunOnLoopAsync(() =>
    {
        work();
        return true;
    });

    /// <summary>
    /// Drops <paramref name="group"/> from this node: its core and waiting requests (they fail as retryable),
    /// its Raft log and its state-machine rows. With <paramref name="importFrom"/> (a cold backup's folder) the
    /// group's state machine and committed log are then copied in from that backup's state.db and raft.db;
    /// either way the group is not hosted afterwards (AddGroupAsync hosts it again, from what the stores hold).
    /// Only for a node that has been removed from the group by membership change (a rebuild): a member must
    /// never lose what it acknowledged.
    /// </summary>
    public Task ReplaceGroupDataAsync(int group, string? importFrom) => RunOnLoopAsync(() =>
    {
        var recorded = _logStore!.Replica(group).Member;
        // The metadata group's members are node ids (every node hosts it; ClusterMetadata.MetadataMembership): no tombstone.
        int member = group == ClusterMetadata.MetadataGroup ? 0
            : _groups.TryGetValue(group, out var hosted) ? hosted.Core.Id : recorded != 0 ? recorded : Id;
        if (_groups.Remove(group, out var g))
        {
            var reason = new RetryableException($"node {Id} no longer hosts group {group}");
            FailGroup(g, reason, new RetryableException(reason.Message + " (the write may still commit)", ambiguous: true));
            AbortSnapshotTransfers(group);
            AbortInstall(group);
            foreach (var c in _captures.Where(c => c.Shard == group).ToArray())
            {
                _captures.Remove(c);
                c.Completion.TrySetException(reason);
            }
        }
        // The log first (durable), with the tombstone of the dropped replica: a crash before the state machine is dropped
        // leaves only rows that AddGroup discards for a group whose log is empty.
        _logStore!.DropGroup(group, member);
        if (importFrom is null)
        {
            // The rows go in steps between the loop's other work (NodeHost.Snapshots.cs, ContinueInstalls): in one
            // transaction a 33 MB shard held the loop 84-213 ms, and with it every shard this node serves.
            _kv!.BeginDropShard(group);
            _drops[group] = (_clock.Elapsed, 0);
        }
        else
        {
            _drops.Remove(group);
            _kv!.DropShard(group);
            // The backup's state machine in either layout; a backup with no file of the shard holds nothing of it.
            long applied = KvStore.FileIn(importFrom, group) is { } source ? _kv.ImportShard(group, source) : 0;
            _logStore.ImportGroup(group, System.IO.Path.Combine(importFrom, "raft.db"), applied);
        }
        PublishStatus();
        return true;
    });

    /// <summary>Hosts a replica of <paramref name="group"/>: the one the stores hold, or a new one; a new group founded here starts
    /// from a snapshot of <paramref name="bootstrapVoters"/> at <paramref name="foundingIndex"/> (0: empty; a split's new shard:
    /// <see cref="ShardCommand.SplitFoundingIndex"/>). False when it is hosted already or refused (a dropped replica id).</summary>
    private bool AddGroup(int group, int member, IReadOnlyList<int>? bootstrapVoters, IReadOnlyList<int>? bootstrapLearners, long foundingIndex = 0)
    {
        if (_groups.ContainsKey(group)) return false;
        // A replica of this shard dropped a moment ago (moved away and back): what is left of its rows goes first, at once,
        // so the new replica starts from nothing.
        if (_drops.Remove(group)) _kv!.DropShard(group);
        var stored = _logStore!.Load(group);
        var (recorded, removed) = _logStore.Replica(group);
        long applied = _kv!.AppliedIndex(group);
        if (applied > 0 && stored.Snapshot is null && stored.Entries.Count == 0 && stored.State.Term == 0)
        {
            // Rows left behind by a drop that a crash interrupted (ReplaceGroupDataAsync): the log is gone, so they go too.
            _kv.DropShard(group);
            applied = 0;
        }
        // A split group created (raft.db) by a split entry whose apply (state.db) a crash cut off: its rows arrive when the old
        // shard applies the entry again, at this start, before the group can take any entry of its own.
        bool splitPending = stored.Snapshot is { Index: ShardCommand.SplitFoundingIndex } && applied == 0 && !_kv.SplitRanges.ContainsKey(group);
        if (stored.Snapshot is { } snap && applied < snap.Index && !splitPending)
            throw new StorageCorruptException(
                $"Node {Id}, group {group}: the state machine is at index {applied} but the Raft log was compacted to {snap.Index}.");
        var snapshot = stored.Snapshot;
        bool fresh = snapshot is null && stored.Entries.Count == 0 && stored.State.Term == 0;
        // A restart resumes the replica the stores hold, as the member it was (a version-2 file recorded none: the node id).
        // A new replica takes the id it was given, unless this node already dropped that replica (or a later one).
        // Data with no member recorded after a drop is a cold backup's, imported by a rebuild: it is a new replica too.
        bool isNew = fresh || (recorded == 0 && removed != 0);
        int id = isNew ? member : recorded != 0 ? recorded : Id;
        if (isNew && (ReplicaIds.NodeOf(member) != Id || member <= removed))
        {
            if (_refusedReplicas.Add((group, member)))
                _options.Log?.Invoke($"node {Id}: group {group}: replica {ReplicaIds.IncarnationOf(member)}.{ReplicaIds.NodeOf(member)} not hosted (this node dropped replica {ReplicaIds.IncarnationOf(removed)}.{ReplicaIds.NodeOf(removed)} of it: a removed replica never comes back)");
            return false;
        }
        if (isNew && recorded != member) _logStore.SetReplica(group, member);
        if (fresh && bootstrapVoters is { Count: > 0 })
        {
            snapshot = new SnapshotMetadata(foundingIndex, foundingIndex, bootstrapVoters.ToArray(), bootstrapLearners?.ToArray() ?? Array.Empty<int>());
            _logStore.SaveSnapshot(group, snapshot, discardLog: false);
        }
        var runtime = new GroupRuntime(NewCore(group, id, stored, snapshot, applied));
        _groups[group] = runtime;
        return true;
    }

    /// <summary>A core for <paramref name="group"/> from what the stores hold: hard state, log, snapshot and applied index.</summary>
    private RaftNode NewCore(int group, int member, Storage.RaftGroupLog stored, SnapshotMetadata? snapshot, long applied)
    {
        _groupRandom ??= _options.Seed is int seed ? new Random(seed * 7919 + Id + 1) : new Random();
        var config = new RaftConfig
        {
            Id = member,
            Group = group,
            Voters = Array.Empty<int>(), // the membership comes from the snapshot (or the leader, when joining)
            ElectionTicks = _options.ElectionTicks,
            HeartbeatTicks = _options.HeartbeatTicks,
            Quiesce = _options.Quiesce,
            Applied = applied,
            Random = new Random(_groupRandom.Next()),
        };
        return new RaftNode(config, stored.State, stored.Entries, snapshot);
    }

    private Task<T> RunOnLoopAsync<T>(Func<T> work)
    {
        var item = new LoopWork<T>(work);
        Enqueue(item);
        return item.Completion.Task;
    }

    /// <summary>A piece of work run on the loop thread; its exception goes to the caller, not to the loop.</summary>
    private abstract class LoopWork
    {
        public abstract void Run();
        public abstract void Fail(Exception reason);
    }

    private sealed class LoopWork<T>(Func<T> work) : LoopWork
    {
        public TaskCompletionSource<T> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override void Run()
        {
            try { Completion.TrySetResult(work()); }
            catch (Exception e) { Completion.TrySetException(e); }
        }

        public override void Fail(Exception reason) => Completion.TrySetException(reason);
    }
}
