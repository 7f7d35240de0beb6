using Replication.Engine.Cluster;
using Replication.Engine.Ring;

namespace Replication.Simulation.Simulation;

/// <summary>
/// Ring mode (<see cref="SimOptions.Ring"/>): the group is shard 0 of a cluster of machines, and its replicas move the
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
/// it does not lead, and the current leader reports it out of the membership; the drop happens a few ticks after the
/// check, on what the check saw, as status reports lag.</item>
/// </list>
/// Faults (drawn in place of the plain membership faults): a fresh empty machine joins (Add-ReplicationNode), a machine
/// leaves (Remove-ReplicationNode: marked leaving, drained, deregistered, gone; refused, as without -Force, when fewer than
/// ReplicationFactor machines would stay), an operator moves one replica to a machine that holds none
/// (Move-ReplicationShard: a <see cref="ShardPin"/>) or hands a pinned shard back to the ring. A machine whose replica was
/// dropped is often named again later (moved back, unpinned). Crashes, partitions, pauses, compaction and lost snapshot
/// transfers go on meanwhile.
///
/// Replica identity: every replica a machine hosts is a new Raft member with an id never used before in the group, and
/// the simulator maps replicas to machines (raft ids are <see cref="SimNode.Id"/>; machine ids are the metadata's). The
/// product today uses the node id as the member id, so a machine that takes a shard back rejoins under the id of its
/// dropped replica: <see cref="Mutant.ReplicaIdReused"/> runs that, and the checks catch it (a stale member whose log
/// still names the old replica as a voter can be elected with the empty new replica's vote and overwrite committed
/// entries). Unique ids are what makes moves back safe.
/// </summary>
public sealed partial class Simulator
{
    private const int RingShard = 0;
    private const int RingReplicationFactor = 3;
    /// <summary>Raft ids a ring run may use beyond the first machines' (every hosting takes a new one); ring faults stop short of it.</summary>
    private const int RingMaxReplicas = 40;
    private ClusterMetadata _metadata = ClusterMetadata.Empty;
    /// <summary>Each machine's latest replica (raft id), and each replica's machine.</summary>
    private readonly Dictionary<int, int> _replicaOf = new(), _machineOf = new();
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
        SetPlacement(founders);
        foreach (int m in founders) _replicaOf[m] = _machineOf[m] = m;
        return founders;
    }

    private void SetPlacement(IReadOnlyList<int> replicas) =>
        _metadata = _metadata with { Placement = new Dictionary<int, IReadOnlyList<int>> { [RingShard] = replicas.ToArray() } };

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

    /// <summary>The machine's replica, when it hosts one now.</summary>
    private SimNode? HostedOn(int machine) => _replicaOf.TryGetValue(machine, out int r) && !Node(r).Retired ? Node(r) : null;

    private string Describe(SimNode replica) => $"machine {_machineOf[replica.Id]} (replica {replica.Id})";

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
    /// One pass of the control loop (see the class summary), before the leader's membership step. Sets the desired
    /// voters to the placed machines' replicas, and <c>_membershipBusy</c> until the ring has settled: placement as the
    /// ring wants it, membership as the placement says, no machine leaving, no replica left to drop.
    /// </summary>
    private void PlaceRing(SimNode? leader)
    {
        var current = new Dictionary<int, ShardPlacement>();
        if (leader is not null)
        {
            try { current[RingShard] = new ShardPlacement(RingShard, leader.Core!.Voters.Select(r => _machineOf[r]).ToArray(), leader.Core.Learners.Select(r => _machineOf[r]).ToArray()); }
            catch (ArgumentException) { } // two replicas of one machine in the membership (an old one not removed yet): in motion
        }
        var changes = PlacementPolicy.Changes(_metadata, current);
        foreach (var (_, replicas) in changes)
        {
            var before = _metadata.ReplicasOf(RingShard);
            SetPlacement(replicas);
            Fault("ring placement", $"machines [{string.Join(",", before)}] -> [{string.Join(",", replicas)}]");
            foreach (int _ in replicas.Except(before)) Count("ring replica moved");
        }
        foreach (int m in PlacementPolicy.Drained(_metadata, current))
        {
            // Its replica, if it still runs one (a leader that removed itself hands over first), is dropped below.
            SetMachine(m, null);
            Fault("ring node left", $"machine {m} holds nothing any more: deregistered");
        }
        var placed = _metadata.ReplicasOf(RingShard);
        foreach (int m in placed)
            if (HostedOn(m) is null) HostReplica(m);
        _desiredVoters.Clear();
        _desiredVoters.UnionWith(_metadata.DesiredVoters(RingShard).Select(m => _replicaOf[m]));
        bool early = Options.Mutant == Mutant.RemoveBeforeCaughtUp;
        foreach (var x in _nodes)
        {
            if (x.Retired || x == leader || _retireScheduled.Contains(x.Id) || placed.Contains(_machineOf[x.Id])) continue;
            bool reportedOut = leader is not null && !leader.Core!.Voters.Contains(x.Id) && !leader.Core.Learners.Contains(x.Id);
            if (!reportedOut && !early) continue;
            _retireScheduled.Add(x.Id);
            Schedule((1 + _rng.Next(5)) * (long)SimOptions.TickUnits, new DropEvent(x));
        }
        bool settled = changes.Count == 0 && leader is not null
            && leader.Core!.Learners.Count == 0 && leader.Core.Voters.Count == _desiredVoters.Count && _desiredVoters.All(leader.Core.Voters.Contains)
            && !_metadata.Nodes.Values.Any(n => n.Leaving)
            && _nodes.All(n => n.Retired || _desiredVoters.Contains(n.Id));
        _membershipBusy = !settled;
    }

    /// <summary>
    /// A machine the placement names starts hosting the shard: a joining replica with an empty disk and a new raft id
    /// (<see cref="Mutant.ReplicaIdReused"/>: the id of the machine's earlier replica, as the product does today). Its
    /// clock rate is the machine's.
    /// </summary>
    private void HostReplica(int machine)
    {
        bool reuse = (Options.Mutant is Mutant.ReplicaIdReused or Mutant.EmptyReplicaVotes) && _replicaOf.ContainsKey(machine);
        int tickPeriod = _replicaOf.TryGetValue(machine, out int earlier) ? Node(earlier).TickPeriod : DrawTickPeriod();
        SimNode n;
        if (reuse)
        {
            var old = Node(earlier);
            n = new SimNode(this, earlier, Array.Empty<int>(), tickPeriod, old.Epoch + 1);
            _nodes[earlier - 1] = n;
            _retireScheduled.Remove(earlier);
        }
        else
        {
            n = new SimNode(this, _nodes.Count + 1, Array.Empty<int>(), tickPeriod);
            _nodes.Add(n);
            Schedule(1 + _rng.Next(SimOptions.TickUnits), new TickEvent(n.Id));
        }
        _replicaOf[machine] = n.Id;
        _machineOf[n.Id] = machine;
        n.Start();
        Fault(reuse ? "ring replica id reused" : "ring replica hosted", $"{Describe(n)}, empty, joining");
    }

    /// <summary>The drop decided a few ticks earlier (DropLeftGroupsAsync): the replica's log and state machine are deleted.</summary>
    private void Drop(DropEvent d)
    {
        if (d.Replica.Retired || Node(d.Replica.Id) != d.Replica) return; // gone already, or its id hosts another replica now
        DropPause(d.Replica);
        d.Replica.Retire();
        Fault("ring replica dropped", Describe(d.Replica));
    }


    private sealed record DropEvent(SimNode Replica);
}
