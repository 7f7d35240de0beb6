using Replication.Engine.Cluster;
using Replication.Engine.Raft;
using Replication.Engine.Ring;
using Replication.Engine.Storage;
using Replication.Engine.Transport;

namespace Replication.Simulation.Simulation;

/// <summary>
/// Ring mode (<see cref="SimOptions.Ring"/>): the group is shard 0 of a cluster of machines (with the shards split off it,
/// once the map has them: Simulator.Splits.cs; everything below runs per shard), and its replicas move the
/// way the product moves them, decided by the product's own pure code. The simulator keeps the cluster's
/// <see cref="ClusterMetadata"/> (registered machines, leaving flags, pins, the shard's placement; in the product the
/// metadata group replicates it, here it is one atomic record: the metadata group is not under test) and runs the
/// control loop of ClusterNode.Control.cs and ClusterNode.Placement.cs every few ticks:
/// <list type="number">
/// <item><see cref="PlacementPolicy.Changes"/>, from the metadata and the membership the shard's current leader reports
/// (its latest configuration, as a status report carries it), writes the new placement; <see cref="PlacementPolicy.Drained"/>
/// deregisters leaving machines that hold nothing any more (a machine stops once it holds no replica);</item>
/// <item>a machine the placement names hosts the shard, as a joining replica with an empty disk when it does not
/// (ReconcileAsync: AddGroupAsync without bootstrap voters);</item>
/// <item>the leader takes the next step of <see cref="MembershipPlan"/> toward the placement (Simulator.Membership.cs,
/// unchanged): add learner, catch up from the log or by snapshot when the log was compacted, promote (the core refuses
/// until it caught up), remove the old replica;</item>
/// <item>a machine drops its replica (log and state machine: DropLeftGroupsAsync) once the placement no longer names it,
/// it does not lead, and the current leader reports it out of the membership it committed; the drop happens a few ticks after the
/// check, on what the check saw, as status reports lag.</item>
/// </list>
/// Faults (drawn in place of the plain membership faults): a fresh empty machine joins (Add-ReplicationNode), a machine
/// leaves (Remove-ReplicationNode: marked leaving, drained, deregistered, gone; refused, as without -Force, when fewer than
/// ReplicationFactor machines would stay), an operator moves one replica to a machine that holds none
/// (Move-ReplicationShard: a <see cref="ShardPin"/>) or hands a pinned shard back to the ring. A machine whose replica was
/// dropped is often named again later (moved back, unpinned). Crashes, partitions, pauses, compaction and lost snapshot
/// transfers go on meanwhile.
///
/// Replica identity, as the product has it (Transport.ReplicaIds): a replica's member id is the one the metadata gives
/// the machine in the shard (<see cref="ClusterMetadata.MemberIdOf"/>; the product's <see cref="ClusterMetadata.NewReplicaIds"/>
/// writes a new one, with the placement, for every machine placed anew), the membership plan works on member ids, a
/// machine hosts a member id only above its tombstone (the highest one it dropped), and drops a replica the metadata has
/// superseded once the leader reports it out. The simulator gives each member id its own raft id (<see cref="SimNode.Id"/>,
/// a bijection), so a member id the product reused for a new, empty replica would be a reused raft id here.
/// <see cref="Mutant.ReplicaIdReused"/> runs the product as it was before (member id = machine id, no tombstone), and
/// the checks catch it (a stale member whose log still names the old replica as a voter can be elected with the empty
/// new replica's vote and overwrite committed entries).
/// </summary>
public sealed partial class Simulator
{
    private const int RingShard = 0;
    private const int RingReplicationFactor = 3;
    /// <summary>Raft ids a ring run may use beyond the first machines' (every hosting takes a new one); ring faults stop short of it.</summary>
    private const int RingMaxReplicas = 40;
    private ClusterMetadata _metadata = ClusterMetadata.Empty;
    /// <summary>Each replica's machine and product member id (by raft id: raft ids are unique across shards).</summary>
    private readonly Dictionary<int, int> _machineOf = new(), _memberOf = new();
    /// <summary>Per shard: each machine's latest replica (raft id); each member id's raft id; each machine's tombstone (the
    /// highest member id it dropped: raft.db's, so it survives crashes). Shards other than 0 come from splits (Simulator.Splits.cs).</summary>
    private readonly Dictionary<(int Shard, int Machine), int> _replicaOf = new(), _tombstone = new();
    private readonly Dictionary<(int Shard, int Member), int> _raftIdOf = new();
    private int _lastMachine;

    /// <summary>
    /// Registers machines 1..Nodes and returns the group's founders: the ring's placement of the shard among them. The
    /// first replica of machine m has raft id m; the machines placed elsewhere start with none.
    /// </summary>
    private int[] RingFounders()
    {
        var info = new ClusterInfo(Guid.Empty, "sim", ShardCount: 1, ReplicationFactor: RingReplicationFactor, DateTimeOffset.UnixEpoch);
        _lastMachine = Options.Nodes;
        _metadata = new ClusterMetadata
        {
            Cluster = info,
            Nodes = Enumerable.Range(1, Options.Nodes).ToDictionary(id => id, id => new NodeEntry($"sim:{id}", Guid.Empty)),
            ShardMap = ShardRangeMap.Even(1),
            NextShard = 1,
        };
        var founders = PlacementPolicy.Desired(_metadata).Single(p => p.Shard == RingShard).Voters.Order().ToArray();
        // The founders' placement, as the founding node writes it (WriteInitialMetadataAsync): no replica ids, member id = node id.
        _metadata = _metadata with { Placement = new Dictionary<int, IReadOnlyList<int>> { [RingShard] = founders } };
        foreach (int m in founders) _replicaOf[(RingShard, m)] = _raftIdOf[(RingShard, m)] = _machineOf[m] = _memberOf[m] = m; // founders: member id = machine id
        return founders;
    }

    /// <summary>The placement written by the control loop, with the new member ids of the machines it names anew, in one
    /// metadata write as the product's (ClusterNode.Control.cs). The mutant writes none (the product before replica ids).</summary>
    private void SetPlacement(int shard, IReadOnlyList<int> replicas)
    {
        var ids = Options.Mutant is Mutant.ReplicaIdReused or Mutant.EmptyReplicaVotes ? null
            : _metadata.NewReplicaIds(shard, replicas.Except(_metadata.ReplicasOf(shard)));
        var placement = _metadata.Placement.ToDictionary(p => p.Key, p => p.Value);
        placement[shard] = replicas.ToArray();
        _metadata = _metadata with { Placement = placement };
        WriteReplicaIds(ids);
    }

    /// <summary>
    /// A split reached the map (Simulator.Splits.cs): the metadata's map gets the new shard with the old one's placement and
    /// member ids (ClusterNode.Split.cs, AddSplitToMapLocalAsync); the ring then places it as it wants (moves).
    /// </summary>
    private void RingAddSplit(int shard, int newShard)
    {
        var placement = _metadata.Placement.ToDictionary(p => p.Key, p => p.Value);
        placement[newShard] = _metadata.ReplicasOf(shard).ToArray();
        var ids = _metadata.NewReplicaIds(newShard, Array.Empty<int>(), from: shard);
        _metadata = _metadata with { ShardMap = _map, Placement = placement, NextShard = Math.Max(_metadata.NextShard, newShard + 1) };
        WriteReplicaIds(ids);
    }

    private void WriteReplicaIds(KvOp? ids)
    {
        if (ids is not null)
            _metadata = ClusterMetadata.FromRows(_metadata.ToRows().Where(r => r.Key != ids.Key).Append((ids.Key, ids.Value!)));
    }

    /// <summary>The product's membership plan on member ids (ClusterNode.Control.cs), its change mapped to raft ids; null
    /// when nothing is to change, or when the change adds a member no machine hosts yet (the product would propose it and
    /// the replica would take it once hosted: here it waits for the next pass).</summary>
    private ConfChange? RingPlanNext(RaftNode core)
    {
        var next = MembershipPlan.Next(core.Voters.Select(r => _memberOf[r]).ToArray(), core.Learners.Select(r => _memberOf[r]).ToArray(),
            _metadata.DesiredVoterMembers(core.Group), Array.Empty<int>(),
            core.MatchIndexes().Where(m => m.Value > 0).Select(m => _memberOf[m.Key]).ToArray()); // as NodeHost's status reports it
        if (next is not { } change) return null;
        bool adds = change.Type is ConfChangeType.AddLearner or ConfChangeType.AddVoter;
        if (_raftIdOf.TryGetValue((core.Group, change.NodeId), out int raftId) && (!adds || Node(raftId).Hosted)) return change with { NodeId = raftId };
        Count("ring add waits for its replica to be hosted");
        return null;
    }

    private void SetMachine(int id, NodeEntry? entry)
    {
        var nodes = _metadata.Nodes.ToDictionary(n => n.Key, n => n.Value);
        if (entry is null) nodes.Remove(id);
        else nodes[id] = entry;
        _metadata = _metadata with { Nodes = nodes };
    }

    private void SetPin(ShardPin? pin) =>
        _metadata = _metadata with { Pins = pin is null ? new Dictionary<int, IReadOnlyList<int>>() : new Dictionary<int, IReadOnlyList<int>> { [RingShard] = pin.Nodes } };

    /// <summary>Registered machines that are not leaving (those that can take a replica).</summary>
    private int[] StayingMachines() => _metadata.Nodes.Where(n => !n.Value.Leaving).Select(n => n.Key).Order().ToArray();

    /// <summary>The machine's replica of the shard, when it hosts one now.</summary>
    private SimNode? HostedOn(int shard, int machine) =>
        _replicaOf.TryGetValue((shard, machine), out int r) && !Node(r).Retired && Node(r).Hosted ? Node(r) : null;

    private string Describe(SimNode replica) =>
        $"machine {_machineOf[replica.Id]} (replica {replica.Id}, member {ReplicaIds.IncarnationOf(_memberOf[replica.Id])}.{_machineOf[replica.Id]})";

    /// <summary>A ring fault, in place of a plain membership fault of the same weight.</summary>
    private void InjectRingChange(FaultKind kind, SimNode? leader)
    {
        // Every change may make a machine host a new replica (a new raft id): stop while ids could run out.
        if (_nodes.Count + 2 * RingReplicationFactor > MaxNodeId) return;
        var staying = StayingMachines();
        switch (kind)
        {
            case FaultKind.AddNode:
            {
                int m = ++_lastMachine;
                SetMachine(m, new NodeEntry($"sim:{m}", Guid.Empty));
                if (Options.Mutant is not (Mutant.ReplicaIdReused or Mutant.EmptyReplicaVotes))
                    foreach (var range in _metadata.MapOr(1).Ranges) WriteReplicaIds(_metadata.NewReplicaIds(range.Shard, new[] { m })); // registration (RegisterNodeAsync)
                Fault("ring join", $"machine {m} (empty)");
                break;
            }
            case FaultKind.RemoveFollower or FaultKind.RemoveLeader when staying.Length > RingReplicationFactor:
            {
                int leaderMachine = leader is not null ? _machineOf[leader.Id] : 0;
                int victim = kind == FaultKind.RemoveLeader && staying.Contains(leaderMachine) ? leaderMachine : staying[_rng.Next(staying.Length)];
                SetMachine(victim, _metadata.Nodes[victim] with { Leaving = true });
                Fault("ring leave", $"machine {victim}{(victim == leaderMachine ? " (the leader's)" : "")} is drained");
                break;
            }
            case FaultKind.ReplaceNode:
            {
                var placed = _metadata.ReplicasOf(RingShard);
                var targets = staying.Where(id => !placed.Contains(id)).ToArray();
                if (_metadata.Pins.Count > 0 && (targets.Length == 0 || _rng.Next(2) == 0))
                {
                    SetPin(null);
                    Fault("ring unpin", "the shard goes back to the ring's placement");
                    break;
                }
                if (targets.Length == 0 || placed.Count == 0) return;
                int from = placed[_rng.Next(placed.Count)], to = targets[_rng.Next(targets.Length)];
                SetPin(ShardPin.Move(RingShard, placed, from, to));
                Fault("ring move", $"replica on machine {from} to machine {to} (pinned)");
                break;
            }
        }
    }

    /// <summary>
    /// One pass of the control loop (see the class summary), before the leaders' membership steps, over every shard of the
    /// metadata's map (split shards once the map has them: Simulator.Splits.cs). Sets shard 0's desired voters to the placed
    /// machines' replicas, and <c>_membershipBusy</c> until the ring has settled: placement as the ring wants it, every
    /// shard's membership as its placement says, no machine leaving, no replica left to drop.
    /// </summary>
    private void PlaceRing(SimNode? leader)
    {
        var shards = _metadata.MapOr(1).Ranges.Select(r => r.Shard).ToArray();
        var leaders = shards.ToDictionary(s => s, s => s == RingShard ? leader : CurrentLeader(s));
        var current = new Dictionary<int, ShardPlacement>();
        foreach (var (shard, l) in leaders)
        {
            if (l is null) continue;
            try { current[shard] = new ShardPlacement(shard, l.Core!.Voters.Select(r => _machineOf[r]).ToArray(), l.Core.Learners.Select(r => _machineOf[r]).ToArray()); }
            catch (ArgumentException) { } // two replicas of one machine in the membership (an old one not removed yet): in motion
        }
        var changes = PlacementPolicy.Changes(_metadata, current);
        foreach (var (shard, replicas) in changes)
        {
            var before = _metadata.ReplicasOf(shard);
            SetPlacement(shard, replicas);
            Fault("ring placement", $"{(shard == RingShard ? "" : $"shard {shard}: ")}machines [{string.Join(",", before)}] -> [{string.Join(",", replicas)}]");
            foreach (int _ in replicas.Except(before)) Count(shard == RingShard ? "ring replica moved" : "ring replica of a split shard moved");
        }
        foreach (int m in PlacementPolicy.Drained(_metadata, current))
        {
            // Its replicas, if it still runs some (a leader that removed itself hands over first), are dropped below.
            SetMachine(m, null);
            Fault("ring node left", $"machine {m} holds nothing any more: deregistered");
        }
        bool early = Options.Mutant == Mutant.RemoveBeforeCaughtUp;
        bool settled = changes.Count == 0 && !_metadata.Nodes.Values.Any(n => n.Leaving);
        foreach (int shard in shards)
        {
            var placed = _metadata.ReplicasOf(shard);
            foreach (int m in placed)
                if (HostedOn(shard, m) is null) HostReplica(shard, m);
            var desired = _metadata.DesiredVoterMembers(shard).Where(member => _raftIdOf.ContainsKey((shard, member))).Select(member => _raftIdOf[(shard, member)]).ToHashSet();
            if (shard == RingShard)
            {
                _desiredVoters.Clear();
                _desiredVoters.UnionWith(desired);
            }
            var l = leaders[shard];
            foreach (var x in GroupNodes(shard))
            {
                if (x.Retired || !x.Hosted || x == l || _retireScheduled.Contains(x.Id)) continue;
                // Kept while placed, unless superseded: the metadata named the machine anew since (DropLeftGroupsAsync).
                int machine = _machineOf[x.Id];
                bool superseded = _memberOf[x.Id] < _metadata.MemberIdOf(shard, machine);
                if (placed.Contains(machine) && !superseded) continue;
                // Out of the membership the leader committed (ClusterNode.RemovedFrom reads a report's committed members): its
                // latest one may hold a removal a new leader then replaces, and the replica, dropped on it, was a member still.
                bool reportedOut = l is not null && l.Core!.MembershipAtCommitted(l.Core.Committed) is var (voters, learners)
                    && !voters.Contains(x.Id) && !learners.Contains(x.Id);
                if (!reportedOut && !early) continue;
                _retireScheduled.Add(x.Id);
                Schedule((1 + _rng.Next(5)) * (long)SimOptions.TickUnits, new DropEvent(x));
            }
            settled &= l is not null && l.Core!.Learners.Count == 0 && l.Core.Voters.Count == desired.Count && desired.All(l.Core.Voters.Contains)
                && GroupNodes(shard).All(n => n.Retired || !n.Hosted || desired.Contains(n.Id));
        }
        _membershipBusy = !settled;
    }

    /// <summary>
    /// A machine the placement names starts hosting the shard (AddGroupAsync): a joining replica with an empty disk, as
    /// the member id the metadata names (<see cref="ClusterMetadata.MemberIdOf"/>), refused at or below the machine's
    /// tombstone. A member id seen before takes its old raft id again (<see cref="Mutant.ReplicaIdReused"/>: the product
    /// before replica ids, member id = machine id and no tombstone); a new one a new raft id. Its clock rate is the machine's.
    /// A split shard's founding member (Simulator.Splits.cs) is hosted here once its old-shard replica skipped the split
    /// (a snapshot past it, or dropped), not before: the old replica creates it when it applies the split.
    /// </summary>
    private void HostReplica(int shard, int machine)
    {
        bool before = Options.Mutant is Mutant.ReplicaIdReused or Mutant.EmptyReplicaVotes;
        int member = _metadata.MemberIdOf(shard, machine);
        if (!before && member <= _tombstone.GetValueOrDefault((shard, machine)))
        {
            Count("ring replica refused (tombstone)");
            return;
        }
        bool reuse = _raftIdOf.TryGetValue((shard, member), out int earlier);
        if (reuse && FoundingReplica(earlier) is { } founding)
        {
            if (SkippedSplit(founding)) Host(founding, "split group replica joins empty", "its old-shard replica skipped the split: the placement names it");
            return;
        }
        int tickPeriod = _replicaOf.TryGetValue((shard, machine), out int latest) ? Node(latest).TickPeriod
            : _replicaOf.TryGetValue((RingShard, machine), out int any) ? Node(any).TickPeriod : DrawTickPeriod();
        SimNode n;
        if (reuse)
        {
            var old = Node(earlier);
            n = new SimNode(this, earlier, Array.Empty<int>(), tickPeriod, old.Epoch + 1, shard, old.Anchor);
            if (shard == RingShard) _nodes[earlier - 1] = n;
            else _children[earlier - ChildBase] = n;
            _retireScheduled.Remove(earlier);
        }
        else if (shard == RingShard)
        {
            n = new SimNode(this, _nodes.Count + 1, Array.Empty<int>(), tickPeriod);
            _nodes.Add(n);
        }
        else
        {
            // A machine's split-shard replicas share its shard-0 replica's crashes, pauses and links, when it has one.
            int anchor = HostedOn(RingShard, machine)?.Id ?? 0;
            n = new SimNode(this, ChildBase + _children.Count, Array.Empty<int>(), tickPeriod, group: shard, anchor: anchor == 0 ? ChildBase + _children.Count : anchor);
            _children.Add(n);
        }
        if (!reuse) Schedule(1 + _rng.Next(SimOptions.TickUnits), new TickEvent(n.Id));
        _replicaOf[(shard, machine)] = n.Id;
        _machineOf[n.Id] = machine;
        _memberOf[n.Id] = member;
        _raftIdOf[(shard, member)] = n.Id;
        n.Start();
        Fault(reuse ? "ring replica id reused" : shard == RingShard ? "ring replica hosted" : "ring replica of a split shard hosted",
            $"{(shard == RingShard ? "" : $"shard {shard}: ")}{Describe(n)}, empty, joining");
    }

    /// <summary>The drop decided a few ticks earlier (DropLeftGroupsAsync): the replica's log and state machine are deleted.</summary>
    private void Drop(DropEvent d)
    {
        if (d.Replica.Retired || Node(d.Replica.Id) != d.Replica) return; // gone already, or its id hosts another replica now
        DropPause(d.Replica);
        d.Replica.Retire();
        int machine = _machineOf[d.Replica.Id];
        var key = (d.Replica.Group, machine);
        _tombstone[key] = Math.Max(_tombstone.GetValueOrDefault(key), _memberOf[d.Replica.Id]);
        Fault("ring replica dropped", $"{(d.Replica.Group == RingShard ? "" : $"shard {d.Replica.Group}: ")}{Describe(d.Replica)}");
    }


    private sealed record DropEvent(SimNode Replica);
}
