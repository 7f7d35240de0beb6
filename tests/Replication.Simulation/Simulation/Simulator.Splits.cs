using Replication.Engine.Raft;
using Replication.Engine.Ring;
using Replication.Engine.Storage;

namespace Replication.Simulation.Simulation;

/// <summary>
/// Shard splits (<see cref="SimOptions.Splits"/>), the way the product splits (ClusterNode.Split.cs, NodeHost.CreateSplitGroups,
/// KvStore.Apply), under the same faults, with the product's pure code: <see cref="ShardRangeMap"/> and <see cref="KeyHash"/>
/// route every key, <see cref="ShardCommand"/> is the entry, <see cref="KvStore.SplitApplies"/> decides whether it takes effect.
/// <list type="number">
/// <item>A coordinator (the metadata leader; its metadata is one atomic record here, the metadata group is not under test)
/// takes the next shard id (compare-and-set on the counter: ids never repeat, a failed attempt burns one) and computes the
/// halves with <see cref="ShardRangeMap.Split"/>.</item>
/// <item>It asks the shard's current leader to propose the split entry, again after a leader change (the entry is idempotent: a
/// second one is refused at apply), and waits until that leader applied it; a leader that applied past it without the split
/// (computed from an older range) refuses, and the attempt ends.</item>
/// <item>Applied at the same index on every replica: the rows of the right half move to the new shard's state machine, and the
/// new shard's Raft group is created on that machine with the membership the shard had at that index (the same replicas,
/// each with its own raft id here: ids are per group in the product, so a bijection models the same member ids), from an
/// index-0 snapshot holding that membership (NodeHost.AddGroup with bootstrap voters). Later entries of the old shard with a
/// key of the right half are refused at apply (WrongShard: nothing written), and so are reads there: the client takes the
/// newer map and routes again.</item>
/// <item>The coordinator adds the new shard to the map (clients pick it up when refused). It may crash before that (a fault
/// drawn here); the control loop's mending (AddMissingSplitsAsync) then adds any split a replica's state machine holds that
/// the map lacks, a few ticks later.</item>
/// </list>
/// A replica of the old shard that skips the split entry (it installs a snapshot past it, or was shut down before applying
/// it) does not create the group; its machine then hosts the new shard as a joining replica with an empty disk, as the
/// product's reconcile does for a placed shard it does not hold (in ring mode once the map has the shard and the placement
/// names the machine). Each new group's replicas share their machine's crashes, pauses and partitions with its shard-0
/// replica (<see cref="SimNode.Anchor"/>). In ring mode the map update gives the metadata the new shard, with the old one's
/// placement and member ids, and from then on the ring places it like any shard (Simulator.Moves.cs): its replicas move,
/// its leader steps through <see cref="MembershipPlan"/>, machines join, leave and drop its replicas.
/// <para>
/// Not modelled: the split's apply is made durable with the new group's creation (the product creates the group durably first
/// and commits the apply lazily; a power loss between the two is not simulated); a snapshot carries the state machine's ranges
/// (the product's snapshot install does not record them); a machine hosting the new shard from its placement before its
/// old-shard replica applied the split (it waits for that apply here; the product once skipped the split on such a machine and
/// kept the right half's rows in the old shard: covered by SplitTests and KvStoreSplitTests, not here); partitions of a machine that hosts split shards only
/// (its replicas have no shard-0 anchor: drops, delays and crashes still reach them); no split is drawn with a forced recovery.
/// </para>
/// </summary>
public sealed partial class Simulator
{
    /// <summary>The first raft id of the split groups' replicas (shard 0's are 1..).</summary>
    private const int ChildBase = 10_000;
    /// <summary>Index (and term) of a split group's founding snapshot (see <see cref="ObserveSplitApplied"/>).</summary>
    private const long FoundingIndex = 1;
    /// <summary>Splits a run starts at most (each takes a shard id, applied or not).</summary>
    private const int MaxSplits = 3;

    /// <summary>The replicas of the groups created by splits, by raft id - <see cref="ChildBase"/>.</summary>
    private readonly List<SimNode> _children = new();
    /// <summary>The cluster's shard map, as the metadata holds it.</summary>
    private ShardRangeMap _map = ShardRangeMap.Even(1);
    private int _nextShard = 1;
    /// <summary>Per split group: the shard it split off, the index of the split entry there, its founding membership, and
    /// each founding member's raft id in the new group (by its raft id in the old one).</summary>
    private readonly Dictionary<int, SplitGroup> _splitGroups = new();
    /// <summary>Per shard, the position of its log's index 0 in the chain of splits it comes from (see <see cref="IndexBase"/>).</summary>
    private readonly Dictionary<int, long> _indexBase = new();
    private SplitAttempt? _split;
    private int _splitsStarted;

    private sealed record SplitGroup(int Shard, int Parent, long Index, int[] Voters, int[] Learners, Dictionary<int, int> ReplicaOf);

    /// <summary>The coordinator's split in progress, and the proposal it last had made.</summary>
    private sealed class SplitAttempt(int shard, int newShard, ShardCommand command)
    {
        public int Shard { get; } = shard;
        public int NewShard { get; } = newShard;
        public ShardCommand Command { get; } = command;
        public (int Leader, long Term, long Index)? Proposed { get; set; }
    }

    /// <summary>
    /// Where index 0 of <paramref name="group"/>'s log sits in the order a key's operations take effect: a key's operations
    /// run in the old shard up to the split's index, then in the new one. So (base + index) orders them across a split, and
    /// the history's recorded order (HistoryOp.At) stays a linearization the checker can try first.
    /// </summary>
    internal long IndexBase(int group) => _indexBase.GetValueOrDefault(group);

    /// <summary>Every replica, of every group (shard 0's first).</summary>
    private IEnumerable<SimNode> AllNodes => _nodes.Concat(_children);

    private IEnumerable<SimNode> GroupNodes(int group) => group == 0 ? _nodes : _children.Where(c => c.Group == group);

    private bool Exists(int id) => id >= ChildBase ? id - ChildBase < _children.Count : id >= 1 && id <= _nodes.Count;

    /// <summary>The other replicas its machine hosts now (they crash and pause with it).</summary>
    private IEnumerable<SimNode> Siblings(SimNode n) => AllNodes.Where(x => x != n && x.Anchor == n.Anchor && x.Hosted && !x.Retired);

    /// <summary>A random replica of <paramref name="shard"/> that is hosted and not shut down (shard 0: as before splits existed).</summary>
    private int RandomLiveIdIn(int shard)
    {
        if (shard == 0) return RandomLiveId();
        var ids = _children.Where(c => c.Group == shard && c.Hosted && !c.Retired).Select(c => c.Id).ToArray();
        return ids.Length == 0 ? RandomLiveId() : ids[_rng.Next(ids.Length)];
    }

    /// <summary>The running, unpaused leader of the highest term of <paramref name="group"/>.</summary>
    private SimNode? CurrentLeader(int group) => group == 0 ? CurrentLeader() :
        _children.Where(x => x.Group == group && x.Up && !IsPaused(x.Id) && x.Core!.Role == RaftRole.Leader).OrderByDescending(x => x.Core!.Term).FirstOrDefault();

    /// <summary>Schedules the split attempts (times drawn apart from the run's random stream) and the driver.</summary>
    private void ScheduleSplits()
    {
        var r = new Random(Options.Seed ^ 0x5B1175);
        int count = 1 + r.Next(MaxSplits);
        for (int i = 0; i < count; i++)
            Schedule((long)(Options.ChaosTicks / 8 + r.Next(Options.ChaosTicks * 3 / 4)) * SimOptions.TickUnits, new SplitEvent());
        Schedule(SimOptions.TickUnits, new SplitDriveEvent());
    }

    /// <summary>An operator (or the size threshold) asks for a split of a random shard: the coordinator takes a new id.</summary>
    private void StartSplit()
    {
        if (_split is not null || _splitsStarted >= MaxSplits || Now >= ChaosEnd) return;
        var shards = _map.Ranges.Where(r => r.CanSplit).Select(r => r.Shard).ToArray();
        int shard = shards[_rng.Next(shards.Length)];
        int newShard = _nextShard++;
        var halves = _map.Split(shard, newShard);
        var (left, right) = (halves.RangeOf(shard), halves.RangeOf(newShard));
        _split = new SplitAttempt(shard, newShard, new ShardCommand(newShard, left.Start, left.Last, right.Start, right.Last));
        _splitsStarted++;
        Fault("split begins", $"shard {shard} {_map.RangeOf(shard)}: shard {newShard} is to take {right}");
    }

    /// <summary>
    /// Every few ticks, for the whole run: the coordinator's next step, the control loop's mending of the map, and the hosting
    /// of split groups on machines that skipped the split entry.
    /// </summary>
    private void DriveSplits()
    {
        Schedule((2 + _rng.Next(4)) * (long)SimOptions.TickUnits, new SplitDriveEvent());
        HostSkippedReplicas();
        if (_rng.Next(4) == 0) AddMissingSplits();
        if (_split is not { } a) return;
        var leader = CurrentLeader(a.Shard);
        if (leader is null) return;
        var core = leader.Core!;
        if (leader.Machine.Ranges.ContainsKey(a.NewShard))
        {
            // Applied on the leader: the map update, unless the coordinator dies first (the mending adds it then).
            _split = null;
            if (!_healed && _rng.Next(4) == 0)
            {
                Fault("split coordinator lost before the map update", $"shard {a.NewShard} split off shard {a.Shard}");
                return;
            }
            AddSplitToMap(a.Shard, a.NewShard, "by its coordinator");
            return;
        }
        if (a.Proposed is { } p && p.Leader == leader.Id && p.Term == core.Term)
        {
            if (leader.Machine.Applied < p.Index && _rng.Next(10) != 0) return; // waiting for the apply (sometimes asked again)
            if (leader.Machine.Applied >= p.Index)
            {
                // Applied without the split: computed from a range the shard no longer has (another split took it). SplitRefused.
                _split = null;
                Fault("split refused at apply", $"shard {a.Shard} did not split into {a.NewShard}");
                return;
            }
        }
        long index = core.Propose(new[] { a.Command.Encode() });
        Mix(12, leader.Id, a.NewShard, index, 0, 0);
        if (index == 0) return;
        a.Proposed = (leader.Id, core.Term, index);
        Fault("split proposed", $"shard {a.Shard} into {a.NewShard}, by leader {leader.Id} at index {index}");
        leader.Pump();
        if (!_healed && _rng.Next(8) == 0)
        {
            // The coordinator dies with the entry in flight: nobody drives this split any more; if it commits, the mending
            // puts it in the map. A later request takes a new id (and is refused at apply when this one took the range).
            _split = null;
            Fault("split coordinator lost after the proposal", $"shard {a.Shard} into {a.NewShard}");
        }
    }

    /// <summary>As ClusterNode.AddMissingSplitsAsync: a split some replica's state machine holds that the map lacks is added.</summary>
    private void AddMissingSplits()
    {
        foreach (var n in AllNodes.Where(n => n.Up && n.Hosted))
        {
            foreach (var (newShard, range) in n.Machine.Ranges)
            {
                if (_map.Contains(newShard)) continue;
                var parent = _map.Ranges.FirstOrDefault(r => r.Start <= range.Start && range.Last <= r.Last);
                if (!_map.Contains(parent.Shard)) continue;
                var candidate = _map.Split(parent.Shard, newShard).RangeOf(newShard);
                if (candidate.Start != range.Start || candidate.Last != range.Last) continue; // not this map's next split (yet)
                AddSplitToMap(parent.Shard, newShard, $"by the control loop (node {n.Id} holds it)");
            }
        }
    }

    private void AddSplitToMap(int shard, int newShard, string how)
    {
        if (_map.Contains(newShard)) return;
        _map = _map.Split(shard, newShard);
        if (Options.Ring) RingAddSplit(shard, newShard); // Simulator.Moves.cs: the ring places the new shard from now on
        Fault("split in the map", $"shard {newShard} {_map.RangeOf(newShard)} from shard {shard}, {how}; map version {_map.Version}");
    }

    /// <summary>
    /// A replica applied a split entry that took effect (NodeHost.CreateSplitGroups, then the apply): the new group's founding
    /// membership is the shard's at that index, the same on every replica (checked); this machine hosts its replica of the new
    /// group with the rows moved. The apply is made durable with the group (see the class summary).
    /// </summary>
    internal void ObserveSplitApplied(SimNode parent, LogEntry e, ShardCommand split, KvMachine moved)
    {
        var (voters, learners) = parent.Core!.MembershipAtCommitted(e.Index);
        if (!_splitGroups.TryGetValue(split.NewShard, out var sg))
        {
            var replicaOf = new Dictionary<int, int>();
            foreach (int m in voters.Concat(learners))
            {
                var member = Node(m);
                var replica = new SimNode(this, ChildBase + _children.Count, Array.Empty<int>(), member.TickPeriod, group: split.NewShard, anchor: member.Anchor)
                {
                    Hosted = false,
                };
                _children.Add(replica);
                replicaOf[m] = replica.Id;
                if (Options.Ring)
                {
                    // The same member id on the same machine (Simulator.Moves.cs): the metadata copies the ids to the new shard.
                    int machine = _machineOf[m];
                    _machineOf[replica.Id] = machine;
                    _memberOf[replica.Id] = _memberOf[m];
                    _raftIdOf[(split.NewShard, _memberOf[m])] = replica.Id;
                    _replicaOf[(split.NewShard, machine)] = replica.Id;
                }
            }
            sg = new SplitGroup(split.NewShard, parent.Group, e.Index, voters.Select(v => replicaOf[v]).ToArray(), learners.Select(l => replicaOf[l]).ToArray(), replicaOf);
            _splitGroups[split.NewShard] = sg;
            _indexBase[split.NewShard] = IndexBase(parent.Group) + e.Index;
            Fault("split applied", $"shard {parent.Group} at index {e.Index}: shard {split.NewShard} created with replicas " +
                $"[{string.Join(",", sg.Voters)}] (voters) [{string.Join(",", sg.Learners)}] (learners)");
        }
        else if (sg.Index != e.Index || sg.Parent != parent.Group
            || !voters.Select(v => sg.ReplicaOf.GetValueOrDefault(v)).Order().SequenceEqual(sg.Voters.Order())
            || !learners.Select(l => sg.ReplicaOf.GetValueOrDefault(l)).Order().SequenceEqual(sg.Learners.Order()))
        {
            Violation($"node {parent.Id} splits shard {split.NewShard} off shard {parent.Group} at index {e.Index} with voters [{string.Join(",", voters)}], " +
                $"but it was split at index {sg.Index} of shard {sg.Parent} with other founders");
            return;
        }
        if (!sg.ReplicaOf.TryGetValue(parent.Id, out int id)) return; // not a member at that index: no replica of the new group
        var child = Node(id);
        if (child.Hosted) return;
        if (Options.Mutant == Mutant.SplitGroupFoundedAtZero)
        {
            // The product before the fix: the founding membership as an index-0 snapshot, the rows below the log.
            child.Disk.RecordMembership(new SnapshotMetadata(0, 0, sg.Voters, sg.Learners));
            child.Disk.Checkpoint = moved.Clone();
        }
        else
        {
            // As the product (ShardCommand.SplitFoundingIndex): the founding state is a snapshot at index 1 (term 1): the log starts above it, so a replica that joins without
            // it (HostSkippedReplicas) lacks index 1 and gets it by snapshot, rows included, before any entry.
            child.Disk.Install(new SnapshotMetadata(FoundingIndex, FoundingIndex, sg.Voters, sg.Learners), moved.At(FoundingIndex));
        }
        parent.SetMachineCheckpoint();
        Host(child, "split group replica created", "with the rows moved");
        // Sometimes the machine crashes right after the apply (at the next event: the host is inside its apply loop now).
        if (!_healed && Options.Crashes && _rng.Next(4) == 0) Schedule(0, new SplitCrashEvent(parent.Id, parent.Epoch));
    }

    /// <summary>
    /// A founding member of a split group whose old-shard replica will never apply the split entry (it installed a snapshot past
    /// it, or was shut down) joins the new group as an empty replica (the product's reconcile hosts every shard its placement
    /// names: AddGroupAsync without bootstrap voters).
    /// </summary>
    private void HostSkippedReplicas()
    {
        if (Options.Ring) return; // the ring's placement hosts them (Simulator.Moves.cs, HostReplica)
        foreach (var sg in _splitGroups.Values)
        {
            foreach (var (parentId, id) in sg.ReplicaOf)
            {
                var child = Node(id);
                if (child.Hosted || child.Retired || !SkippedSplit(child)) continue;
                Host(child, "split group replica joins empty", Node(parentId).Retired ? "its old-shard replica is gone" : "its old-shard replica skipped the split (snapshot past it)");
            }
        }
    }

    /// <summary>A founding replica of a split group that is not hosted yet (null for any other raft id).</summary>
    private SimNode? FoundingReplica(int id) => id >= ChildBase && Node(id) is { Hosted: false, Retired: false } n ? n : null;

    /// <summary>Whether a founding replica's old-shard replica will never apply the split: shut down, or applied past it without it.</summary>
    private bool SkippedSplit(SimNode founding)
    {
        var sg = _splitGroups[founding.Group];
        var parent = Node(sg.ReplicaOf.Single(p => p.Value == founding.Id).Key);
        return parent.Retired || (parent.Up && parent.Machine.Applied >= sg.Index);
    }

    /// <summary>
    /// Ring mode: each split shard's leader takes the next step of <see cref="MembershipPlan"/> toward its placement (as shard
    /// 0's in DriveMembership), one change at a time per group.
    /// </summary>
    private void DriveSplitMembership()
    {
        foreach (var range in _metadata.MapOr(1).Ranges.Where(r => r.Shard != RingShard))
        {
            var leader = CurrentLeader(range.Shard);
            if (leader is null || leader.Core!.IsConfChangePending) continue;
            if (RingPlanNext(leader.Core) is not { } change) continue;
            long index = leader.Core.ProposeConfChange(change);
            Mix(13, leader.Id, (long)change.Type, change.NodeId, index, 0);
            if (index == 0)
            {
                Count("conf change refused");
                continue;
            }
            Fault("conf change " + change.Type + " (split shard)", $"shard {range.Shard}: {change} proposed by leader {leader.Id} at index {index}");
            leader.Pump();
        }
    }

    private void Host(SimNode child, string kind, string why)
    {
        child.Hosted = true;
        child.Start();
        Schedule(1 + _rng.Next(SimOptions.TickUnits), new TickEvent(child.Id));
        Fault(kind, $"node {child.Id} of shard {child.Group} on the machine of node {child.Anchor}: {why}");
    }

    /// <summary>
    /// The split groups have settled (see CheckSettled): no split in progress, every split in the map, and every group's
    /// members hosted, up and applied to the leader's last index. Records each group's final members.
    /// </summary>
    private bool SplitGroupsSettled()
    {
        if (_split is not null || _splitGroups.Keys.Any(s => !_map.Contains(s))) return false;
        var finals = new Dictionary<int, IReadOnlySet<int>>();
        foreach (int g in _splitGroups.Keys)
        {
            var leader = CurrentLeader(g);
            if (leader is null || leader.Core!.IsConfChangePending) return false;
            var members = leader.Core.Voters.Concat(leader.Core.Learners).ToHashSet();
            var nodes = members.Select(Node).ToList();
            if (nodes.Any(n => !n.Hosted || !n.Up || n.Persisting is not null || n.Core!.HasReady)) return false;
            long commit = leader.Core.Committed;
            if (commit != leader.Core.LastIndex || nodes.Any(n => n.Machine.Applied != commit)) return false;
            finals[g] = members;
        }
        foreach (var (g, members) in finals) _finalSplitMembers[g] = members;
        return true;
    }

    private readonly Dictionary<int, IReadOnlySet<int>> _finalSplitMembers = new();

    /// <summary>
    /// At the end: every split group's final members hold the same data, and every key a group's replicas hold is one the final
    /// map gives that shard (a key lives in exactly one shard).
    /// </summary>
    private void CheckSplitGroups()
    {
        foreach (var (g, members) in _finalSplitMembers.OrderBy(p => p.Key))
        {
            var finals = members.Order().Select(Node).ToList();
            if (finals.Select(n => n.Machine.Dump()).Distinct().Count() > 1)
                Violation($"replicas of shard {g} differ after settling:\n  " + string.Join("\n  ", finals.Select(n => $"node {n.Id} @{n.Machine.Applied}: {n.Machine.Dump()}")));
        }
        foreach (var n in _nodes.Where(n => _finalMembers.Contains(n.Id)).Concat(_finalSplitMembers.SelectMany(p => p.Value.Select(Node))))
        {
            if (n.Machine.Keys().FirstOrDefault(k => _map.ShardFor(k) != n.Group) is { } stray)
            {
                Violation($"node {n.Id} of shard {n.Group} holds '{stray}', which the map gives shard {_map.ShardFor(stray)}");
                return;
            }
        }
    }

    /// <summary>The crash drawn right after a split applied on a machine.</summary>
    private void CrashAfterSplit(SplitCrashEvent c)
    {
        var n = Node(c.Node);
        if (!n.Up || n.Epoch != c.Epoch || _healed) return;
        Count("crash right after a split applied");
        CrashNode(n, 2 + _rng.Next(30));
    }

    private sealed record SplitCrashEvent(int Node, int Epoch);
    private sealed record SplitEvent;
    private sealed record SplitDriveEvent;
}
