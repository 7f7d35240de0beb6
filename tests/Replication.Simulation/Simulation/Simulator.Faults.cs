using Replication.Engine.Raft;
using Replication.Engine.Verification;

namespace Replication.Simulation.Simulation;

/// <summary>Fault injection, healing and the end-of-run checks.</summary>
public sealed partial class Simulator
{
    /// <summary>
    /// Fault events drawn during the chaos phase (message-level faults are drawn per message in
    /// <see cref="Send"/>). New kinds (compaction, snapshot transfer, membership change) go here.
    /// </summary>
    private enum FaultKind
    {
        Partition,
        IsolateLeader,
        AsymmetricPartition,
        CutFromLeader,
        HealPartition,
        Crash,
        CrashLeader,
        CrashAll,
        SlowDisk,
        TransferLeader,
        AddNode,
        RemoveFollower,
        RemoveLeader,
        ReplaceNode,
        PauseLeader,
        PauseNode,
    }

    private static readonly (FaultKind Kind, int Weight)[] FaultWeights =
    {
        (FaultKind.Partition, 10),
        (FaultKind.IsolateLeader, 8),
        (FaultKind.AsymmetricPartition, 6),
        (FaultKind.CutFromLeader, 6),
        (FaultKind.HealPartition, 12),
        (FaultKind.Crash, 8),
        (FaultKind.CrashLeader, 5),
        (FaultKind.CrashAll, 1),
        (FaultKind.SlowDisk, 6),
        (FaultKind.TransferLeader, 6),
        (FaultKind.AddNode, 4),
        (FaultKind.RemoveFollower, 3),
        (FaultKind.RemoveLeader, 3),
        (FaultKind.ReplaceNode, 3),
        (FaultKind.PauseLeader, 6),
        (FaultKind.PauseNode, 4),
    };

    private static bool IsCrash(FaultKind k) => k is FaultKind.Crash or FaultKind.CrashLeader or FaultKind.CrashAll;

    private static bool IsPartition(FaultKind k) =>
        k is FaultKind.Partition or FaultKind.IsolateLeader or FaultKind.AsymmetricPartition or FaultKind.CutFromLeader;

    private long NextFaultDelay() => (1 + _rng.Next(2 * Options.FaultIntervalTicks)) * (long)SimOptions.TickUnits;

    private void InjectFault()
    {
        var weights = FaultWeights
            .Where(w => Options.Crashes || !IsCrash(w.Kind))
            .Select(w => (w.Kind, Weight: Options.Profile switch
            {
                FaultProfile.PartitionHeavy when IsPartition(w.Kind) => 3 * w.Weight,
                FaultProfile.PartitionHeavy when IsCrash(w.Kind) => 1,
                FaultProfile.CrashHeavy when IsCrash(w.Kind) => 3 * w.Weight,
                _ => w.Weight,
            }))
            .ToArray();
        int roll = _rng.Next(weights.Sum(w => w.Weight));
        var kind = weights[0].Kind;
        foreach (var (k, w) in weights)
        {
            if (roll < w)
            {
                kind = k;
                break;
            }
            roll -= w;
        }
        int n = _nodes.Count; // every id ever used (retired nodes are down: blocking them changes nothing)
        var leader = CurrentLeader();
        switch (kind)
        {
            case FaultKind.Partition:
            {
                // Symmetric: a random minority (possibly holding the leader) against the rest.
                ClearBlocks();
                var side = Shuffled().Take(1 + _rng.Next(LiveIds().Count() / 2)).ToHashSet();
                for (int a = 1; a <= n; a++)
                    for (int b = 1; b <= n; b++)
                        if (side.Contains(a) != side.Contains(b)) _blocked[a, b] = true;
                Fault("partition", $"{{{string.Join(",", side.Order())}}} | rest");
                break;
            }
            case FaultKind.IsolateLeader:
            {
                // The leader alone in a minority: it keeps believing it leads until check-quorum
                // deposes it, while the majority elects another (the window stale reads live in).
                // In a group of five, half the time with one follower that keeps hearing it (and so
                // refuses to vote for anyone else for an election timeout).
                if (leader is null) return;
                if (_rng.Next(3) == 0)
                {
                    // Right after its next heartbeat acknowledgment: its lease is then as fresh as it
                    // gets, and the others' refusal to vote has only just restarted, so a lease that
                    // outlives that refusal (clock drift, RaftNode.Read.cs) is put to the test.
                    _isolateAfterAck = leader.Id;
                    return;
                }
                ClearBlocks();
                var side = new HashSet<int> { leader.Id };
                if (LiveIds().Count() >= 5 && _rng.Next(2) == 0) side.Add(Shuffled().First(x => x != leader.Id));
                for (int a = 1; a <= n; a++)
                    for (int b = 1; b <= n; b++)
                        if (side.Contains(a) != side.Contains(b)) _blocked[a, b] = true;
                Fault("isolate leader", $"{{{string.Join(",", side.Order())}}} (leader {leader.Id}) | rest");
                break;
            }
            case FaultKind.AsymmetricPartition:
            {
                // One direction only: a node hears others but is not heard (or the reverse).
                int a = RandomLiveId();
                bool outgoing = _rng.Next(2) == 0;
                var others = Shuffled().Where(x => x != a).Take(1 + _rng.Next(n - 1)).ToList();
                foreach (int b in others)
                    if (outgoing) _blocked[a, b] = true;
                    else _blocked[b, a] = true;
                Fault("asymmetric partition", $"{a} {(outgoing ? "-/->" : "<-/-")} {{{string.Join(",", others.Order())}}}");
                break;
            }
            case FaultKind.CutFromLeader:
            {
                if (leader is null) return;
                int f = Shuffled().FirstOrDefault(x => x != leader.Id);
                if (f == 0) return;
                _blocked[leader.Id, f] = _blocked[f, leader.Id] = true;
                Fault("cut from leader", $"node {f} from leader {leader.Id}");
                break;
            }
            case FaultKind.HealPartition:
                ClearBlocks();
                Fault("heal partition", "");
                break;
            case FaultKind.Crash:
            {
                var up = _nodes.Where(x => x.Up).ToList();
                if (up.Count == 0) return;
                // Half the time prefer a node in the middle of a write.
                var writing = up.Where(x => x.Persisting is not null).ToList();
                var victim = writing.Count > 0 && _rng.Next(2) == 0 ? writing[_rng.Next(writing.Count)] : up[_rng.Next(up.Count)];
                CrashNode(victim, 2 + _rng.Next(60));
                break;
            }
            case FaultKind.CrashLeader:
                if (leader is null) return;
                CrashNode(leader, 2 + _rng.Next(60));
                break;
            case FaultKind.CrashAll:
                Fault("crash all", "");
                foreach (var x in _nodes.Where(x => x.Up)) CrashNode(x, 1 + _rng.Next(30));
                break;
            case FaultKind.SlowDisk:
            {
                var x = Node(RandomLiveId());
                x.SlowDiskTicks = 1 + _rng.Next(8);
                int span = 10 + _rng.Next(90);
                Schedule((long)span * SimOptions.TickUnits, new SlowDiskEndEvent(x.Id));
                Fault("slow disk", $"node {x.Id}: {x.SlowDiskTicks} ticks per write for {span} ticks");
                break;
            }
            case FaultKind.TransferLeader:
            {
                if (leader is null) return;
                int target = Shuffled().FirstOrDefault(x => x != leader.Id && leader.Core!.Voters.Contains(x));
                if (target == 0) return;
                // Sometimes the old leader is cut off from the group the moment its successor gets
                // the TimeoutNow: it hands over and then hears nothing of the new term, while clients
                // still reach it (a deposed leader that does not know it yet).
                bool cut = _rng.Next(3) == 0;
                if (cut) _cutOnHandover = leader.Id;
                Fault("leader transfer", $"{leader.Id} -> {target}{(cut ? ", then the old leader is cut off" : "")}");
                leader.Core!.TransferLeadership(target);
                leader.Pump();
                break;
            }
            case FaultKind.AddNode or FaultKind.RemoveFollower or FaultKind.RemoveLeader or FaultKind.ReplaceNode:
                InjectMembershipChange(kind, leader);
                break;
            case FaultKind.PauseLeader:
                if (leader is not null) Pause(leader, PauseTicks(), " (leader)", isolateOnResume: _rng.Next(3) == 0);
                break;
            case FaultKind.PauseNode:
                Pause(Node(RandomLiveId()), PauseTicks(), "");
                break;
        }
    }

    /// <summary>
    /// Called by a host at a <see cref="CrashPoint"/>: during the chaos, crashes the node there with
    /// probability <see cref="SimOptions.CrashPointRate"/>, usually restarting it at once (a process
    /// supervisor). Returns whether it crashed (the host then stops carrying out its Ready).
    /// </summary>
    internal bool MaybeCrashAt(SimNode n, CrashPoint point)
    {
        if (_healed || Options.CrashPointRate == 0 || _rng.NextDouble() >= Options.CrashPointRate) return false;
        Count("crash point " + point);
        CrashNode(n, _rng.Next(2) == 0 ? 0 : 2 + _rng.Next(40));
        return true;
    }

    /// <summary>The TimeoutNow of a handover reached its target: cut the old leader off if that was planned.</summary>
    private void OnHandover(RaftMessage timeoutNow)
    {
        if (_cutOnHandover != timeoutNow.From || _healed) return;
        _cutOnHandover = 0;
        IsolateAlone(timeoutNow.From, $"after handing over to {timeoutNow.To}");
    }

    /// <summary>A leader armed by the isolate-leader fault has just handled a heartbeat acknowledgment: cut it off now.</summary>
    private void OnHeartbeatAcknowledged(RaftMessage response)
    {
        if (_isolateAfterAck != response.To || _healed) return;
        _isolateAfterAck = 0;
        IsolateAlone(response.To, "right after it renewed its lease");
    }

    /// <summary>Cuts <paramref name="id"/> off from every other node (clients still reach it).</summary>
    private void IsolateAlone(int id, string why)
    {
        id = Node(id).Anchor; // its machine
        ClearBlocks();
        for (int b = 1; b <= _nodes.Count; b++)
            if (b != id) _blocked[id, b] = _blocked[b, id] = true;
        Fault("isolate leader", $"{{{id}}} ({why}) | rest");
    }

    /// <summary>Half the pauses are shorter than an election timeout; the others last up to five, long enough for a new leader to commit behind the paused one's back.</summary>
    private int PauseTicks() => _rng.Next(2) == 0 ? 1 + _rng.Next(Options.ElectionTicks) : Options.ElectionTicks + _rng.Next(4 * Options.ElectionTicks);

    /// <summary>Crashes <paramref name="victim"/>'s machine: the replica and the split groups' replicas it hosts (Simulator.Splits.cs).</summary>
    private void CrashNode(SimNode victim, int downTicks)
    {
        if (_rng.NextDouble() < Options.QuickRestartRate) downTicks = _rng.Next(4);
        foreach (var n in Siblings(victim).Where(s => s.Up).Prepend(victim).ToList())
        {
            DropPause(n);
            bool committed = _rng.Next(2) == 0;
            bool mid = n.Crash(committed);
            if (n.Group != 0) Count("crash of a split group's replica");
            Fault(mid ? "crash mid-write" : "crash",
                $"node {n.Id}{(mid ? $", its write {(committed ? "committed" : "rolled back")}" : "")}, down {downTicks} ticks");
            Schedule(1 + (long)downTicks * SimOptions.TickUnits, new RestartEvent(n.Id, n.Epoch));
        }
    }

    private void Restart(SimNode n)
    {
        n.Start();
        Fault("restart", $"node {n.Id}");
    }

    /// <summary>The end of the chaos: partitions heal, nodes restart, disks and network behave; final reads begin.</summary>
    private void Heal()
    {
        _healed = true;
        ClearBlocks();
        foreach (int id in _pausedWork.Keys.Order().ToList()) Resume(id);
        foreach (var n in AllNodes)
        {
            n.SlowDiskTicks = 0;
            if (!n.Up && !n.Retired && n.Hosted) Restart(n);
        }
        TraceLine(() => "healed: final reads begin");
        foreach (var c in _clients.Where(c => c.Final)) Schedule(SimOptions.TickUnits, new IssueEvent(c.Id));
        Schedule((long)ProgressTicks * SimOptions.TickUnits, new ProgressDeadlineEvent());
    }

    /// <summary>Once every final read succeeded and all replicas applied the same committed log, the run ends.</summary>
    private void CheckSettled()
    {
        if (_clients.Any(c => c.Final && !c.Done) || _membershipBusy) return;
        var leader = CurrentLeader();
        if (leader is null || leader.Core!.IsConfChangePending) return;
        // The final members only: a removed node that never learned of its removal is not waited for.
        var members = leader.Core.Voters.Concat(leader.Core.Learners).ToHashSet();
        var nodes = members.Select(Node).ToList();
        if (nodes.Any(n => !n.Up || n.Persisting is not null || n.Core!.HasReady)) return;
        long commit = leader.Core.Committed;
        if (commit != leader.Core.LastIndex) return;
        if (nodes.Any(n => n.Machine.Applied != commit)) return;
        if (!SplitGroupsSettled()) return; // Simulator.Splits.cs
        _finalMembers = members;
        TraceLine(() => $"settled at index {commit}, members {{{string.Join(",", members.Order())}}}");
        _stopped = true;
    }

    private void FinalChecks()
    {
        // Operations still in flight when the run settled: their clients never heard back, so they
        // are unknown (leaving them out would hide writes the final reads may observe).
        foreach (var c in _clients)
            if (c.Current is { } cur) Record(HistoryOp.Unknown(cur.OpId, c.Id, cur.Input, cur.Invoke));
        var check = CheckHistory(BoundedHistory()); // in two parts around a forced recovery
        _result.Check = check;
        if (check.Outcome == CheckOutcome.NotLinearizable) Violation("history is not linearizable: " + check.Detail);
        // An undecided history is not a pass: nothing was shown about it.
        if (check.Outcome == CheckOutcome.Undecided) Violation("linearizability undecided: " + check.Detail);
        var finals = _nodes.Where(n => _finalMembers.Contains(n.Id)).ToList();
        var dumps = finals.Select(n => n.Machine.Dump()).Distinct().ToList();
        if (dumps.Count > 1) Violation("replicas differ after settling:\n  " + string.Join("\n  ", finals.Select(n => $"node {n.Id} @{n.Machine.Applied}: {n.Machine.Dump()}")));
        CheckSplitGroups();
    }

    /// <summary>The running, unpaused leader of the highest term (a paused one can do nothing, and is not asked to).</summary>
    private SimNode? CurrentLeader() =>
        _nodes.Where(x => x.Up && !IsPaused(x.Id) && x.Core!.Role == RaftRole.Leader).OrderByDescending(x => x.Core!.Term).FirstOrDefault();

    private IEnumerable<int> Shuffled()
    {
        var ids = LiveIds().ToArray();
        _rng.Shuffle(ids);
        return ids;
    }

    /// <summary>Every link opens (a new partition may close some again at once); held messages on them are released.</summary>
    private void ClearBlocks()
    {
        Array.Clear(_blocked);
        ReleaseHeld();
    }

    private void Fault(string kind, string detail)
    {
        Count(kind);
        Mix(3, kind.Length, detail.Length, 0, 0, 0);
        _result.Trace.Add($"{Now / SimOptions.TickUnits,6}.{Now % SimOptions.TickUnits} fault: {kind} {detail}");
    }
}
