using Replication.Engine.Cluster;
using Replication.Engine.Raft;

namespace Replication.Simulation.Simulation;

/// <summary>
/// Membership changes during the faults, driven as the product's process-mode host drives them
/// (Member/MembershipPlan.cs, NodeHost.Groups.cs): a fault sets a desired set of voters (add a
/// brand-new node, remove a follower, remove the leader, replace a node); an operator loop then
/// asks whichever node leads for the next single-server step (add learner, promote once caught
/// up, remove), one change at a time, retrying on every refusal. A new node is created by its
/// host with an empty configuration and an empty disk. A removed node is shut down by its host
/// once it applies its own removal, or by the operator some ticks after seeing the removal
/// committed, and is never restarted. Crashes, partitions, compaction and snapshot transfers go on
/// meanwhile.
/// </summary>
public sealed partial class Simulator
{
    /// <summary>Upper bound on the nodes a run creates beyond the founders (each added node takes a new id).</summary>
    private const int MaxAddedNodes = 6;

    private readonly SortedSet<int> _desiredVoters = new();
    private readonly HashSet<int> _retireScheduled = new();
    /// <summary>True from a membership fault until the leader's committed configuration is the desired one.</summary>
    private bool _membershipBusy;
    /// <summary>The members of the group when the run settled: the final convergence check is over them.</summary>
    private IReadOnlySet<int> _finalMembers = new HashSet<int>();

    private int MaxNodeId => Options.Nodes + (Options.Ring ? RingMaxReplicas : MaxAddedNodes);

    /// <summary>Ids of the nodes that exist and were not shut down for good.</summary>
    private IEnumerable<int> LiveIds() => _nodes.Where(x => !x.Retired).Select(x => x.Id);

    private int RandomLiveId()
    {
        var ids = LiveIds().ToArray();
        return ids[_rng.Next(ids.Length)];
    }

    /// <summary>A membership fault: a new desired voter set, or nothing when a change is still in progress or the bounds forbid it.</summary>
    private void InjectMembershipChange(FaultKind kind, SimNode? leader)
    {
        if (Options.Ring)
        {
            InjectRingChange(kind, leader);
            return;
        }
        if (_membershipBusy) return; // one operation at a time, as an operator would
        bool canAdd = _nodes.Count < MaxNodeId;
        switch (kind)
        {
            case FaultKind.AddNode when canAdd && _desiredVoters.Count < 5:
            {
                var n = CreateNode();
                _desiredVoters.Add(n.Id);
                Fault("add node", $"node {n.Id} (empty config, empty disk); desired voters {{{string.Join(",", _desiredVoters)}}}");
                break;
            }
            case FaultKind.RemoveFollower when _desiredVoters.Count > 3:
            {
                var candidates = _desiredVoters.Where(v => v != leader?.Id).ToArray();
                int victim = candidates[_rng.Next(candidates.Length)];
                _desiredVoters.Remove(victim);
                Fault("remove follower", $"node {victim}; desired voters {{{string.Join(",", _desiredVoters)}}}");
                break;
            }
            case FaultKind.RemoveLeader when _desiredVoters.Count > 3 && leader is not null && _desiredVoters.Contains(leader.Id):
                _desiredVoters.Remove(leader.Id);
                Fault("remove leader", $"node {leader.Id}; desired voters {{{string.Join(",", _desiredVoters)}}}");
                break;
            case FaultKind.ReplaceNode when canAdd:
            {
                var list = _desiredVoters.ToArray();
                int old = leader is not null && _desiredVoters.Contains(leader.Id) && _rng.Next(3) == 0 ? leader.Id : list[_rng.Next(list.Length)];
                var n = CreateNode();
                _desiredVoters.Add(n.Id);
                _desiredVoters.Remove(old);
                Fault("replace node", $"node {old} by new node {n.Id}; desired voters {{{string.Join(",", _desiredVoters)}}}");
                break;
            }
            default:
                return;
        }
        _membershipBusy = true;
    }

    /// <summary>The host of a brand-new node starts it: empty configuration, empty disk.</summary>
    private SimNode CreateNode()
    {
        var n = new SimNode(this, _nodes.Count + 1, Array.Empty<int>(), DrawTickPeriod());
        _nodes.Add(n);
        n.Start();
        Schedule(1 + _rng.Next(SimOptions.TickUnits), new TickEvent(n.Id));
        return n;
    }

    /// <summary>
    /// The operator loop (every few ticks, for the whole run): asks the leader for the next step of
    /// <see cref="MembershipPlan"/> toward the desired voters; retires nodes whose removal it sees committed.
    /// </summary>
    private void DriveMembership()
    {
        Schedule((2 + _rng.Next(4)) * (long)SimOptions.TickUnits, new MembershipEvent());
        var leader = CurrentLeader();
        if (Options.Ring) PlaceRing(leader);
        if (Options.Ring) DriveSplitMembership(); // Simulator.Splits.cs
        if (!_membershipBusy) return;
        if (leader is null || !leader.Up) return; // (a split shard's leader on its machine may have crashed it just now)
        var core = leader.Core!;
        if (core.IsConfChangePending)
        {
            // Usually wait for the change in flight to commit (or be overwritten), as the product's
            // driver does; sometimes propose anyway, to hold the core to its one-change-at-a-time rule.
            if (_rng.Next(3) == 0) ProposeWhilePending(leader);
            return;
        }
        var committedMembers = core.Voters.Concat(core.Learners).ToHashSet();
        foreach (var x in _nodes)
            if (!Options.Ring && !x.Retired && !_desiredVoters.Contains(x.Id) && !committedMembers.Contains(x.Id) && _retireScheduled.Add(x.Id))
                Schedule((5 + _rng.Next(36)) * (long)SimOptions.TickUnits, new RetireEvent(x.Id, "the operator saw its removal committed"));
        var next = Options.Ring ? RingPlanNext(core) : MembershipPlan.Next(core.Voters, core.Learners, _desiredVoters, Array.Empty<int>());
        if (next is not { } change)
        {
            // Ring mode: settled once the replicas moved away are dropped too (PlaceRing decides).
            if (!Options.Ring) _membershipBusy = false;
            TraceLine(() => $"membership settled: voters {{{string.Join(",", core.Voters.Order())}}}");
            return;
        }
        long index = core.ProposeConfChange(change);
        Mix(10, leader.Id, (long)change.Type, change.NodeId, index, 0);
        if (index == 0)
        {
            Count("conf change refused");
            TraceLine(() => $"node {leader.Id} refuses {change}: {core.LastConfChangeRefusal}");
            return;
        }
        bool self = change.Type == ConfChangeType.RemoveNode && change.NodeId == leader.Id;
        Fault("conf change " + change.Type + (self ? " (leader itself)" : ""), $"{change} proposed by leader {leader.Id} at index {index}");
        leader.Pump();
    }

    /// <summary>
    /// Invariant (thesis 4.1, the safety argument of RaftNode.Membership.cs): a leader whose latest
    /// membership change is uncommitted refuses another. The change proposed is the plan's next
    /// step from the configuration in force (which already includes the pending change), or, when
    /// the plan is done, the removal of a follower; either would be a second change in flight.
    /// </summary>
    private void ProposeWhilePending(SimNode leader)
    {
        var core = leader.Core!;
        var change = (Options.Ring ? RingPlanNext(core) : MembershipPlan.Next(core.Voters, core.Learners, _desiredVoters, Array.Empty<int>()))
            ?? new ConfChange(ConfChangeType.RemoveNode, core.Voters.Where(v => v != leader.Id).Max());
        long index = core.ProposeConfChange(change);
        Mix(11, leader.Id, (long)change.Type, change.NodeId, index, 0);
        Count("conf change proposed while one is pending");
        if (index != 0)
        {
            Violation($"leader {leader.Id} accepted {change} at index {index} while an earlier membership change was uncommitted");
            return;
        }
        TraceLine(() => $"node {leader.Id} refuses {change} while a change is pending: {core.LastConfChangeRefusal}");
    }

    /// <summary>A node's host applied the node's own removal: it shuts the node down a little later.</summary>
    internal void ObserveOwnRemoval(SimNode n)
    {
        // Ring mode: the control loop's drop rule decides (Simulator.Moves.cs); the machine may hold the shard again later.
        if (!Options.Ring && _retireScheduled.Add(n.Id))
            Schedule((1 + _rng.Next(5)) * (long)SimOptions.TickUnits, new RetireEvent(n.Id, "it applied its own removal"));
    }

    private void Retire(RetireEvent r)
    {
        var n = Node(r.Node);
        if (n.Retired) return;
        DropPause(n);
        n.Retire();
        Fault("shut down removed node", $"node {n.Id}: {r.Why}");
    }

    private sealed record MembershipEvent;
    private sealed record RetireEvent(int Node, string Why);
}
