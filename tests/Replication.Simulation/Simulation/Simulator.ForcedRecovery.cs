using Replication.Engine.Raft;
using Replication.Engine.Verification;

namespace Replication.Simulation.Simulation;

/// <summary>
/// Forced recovery after a permanent loss of quorum (<see cref="SimOptions.ForcedRecovery"/>; the product's
/// Invoke-ReplicationFailover -AllowDataLoss, NodeHost.ForcedRecovery.cs), once, in the middle of the faults:
/// <list type="number">
/// <item>The group's configuration is the latest one known: that of the durable log that is most up to date. A
/// minority of its voters (at least one) survives; every other node is destroyed for good (its folder deleted: retired,
/// and whatever it still had on the wire is gone with its connections, as a dead process's would be).</item>
/// <item>The operator forces the survivor with the longest durable log (highest last term, then last index), as the
/// product's coordinator does: at a point between two loop iterations (a write in progress completes first), its log
/// gets, in a new term (one past its term and its last entry's), a PromoteLearner of itself when it is not a voter and
/// a RemoveNode of every other voter, written with that term and no vote in one durable write; the node is then
/// restarted from its files, campaigns alone, and the membership driver re-grows the group with new, empty nodes.</item>
/// </list>
/// <para>
/// What may be lost, and the exact check of it. The recovery reports the survivor's last durable entry (L, T). An
/// acknowledged write whose entry e sits at index i and was committed by the leader of term c survives if i &lt;= L and
/// c &lt;= T: when c &lt; T, the leader of term T had e (Leader Completeness), and the survivor's log equals that leader's up
/// to L (Log Matching through the entry (L, T)); when c = T, the leader of T itself had e. Nothing is promised for the
/// others: that is the reported window. The check runs the moment the recovery is done, on the survivor's durable log,
/// for every write acknowledged before it. c is the term of the leader when it applied the entry and answered, which is
/// at least the true commit term: the check may demand less than the rule, never more.
/// </para>
/// <para>
/// The history is cut in two at the recovery. Operations invoked before it (those in flight become unknown: their
/// clients give up) must be linearizable from the empty start, as always: the lost nodes worked correctly until they
/// were destroyed. Operations invoked after it must be linearizable from what the survivor's log holds up to L (every
/// entry of it commits with the rewrite, and nothing later can be ordered before them). The invariants that span the
/// whole run restart from the survivor: applied entries above what it applied are forgotten (the lost majority may
/// have applied other entries there), and so are the leaders per term and the proposals of the new term and later (the
/// new term may have been used by a lost leader: harmless, as it is gone).
/// </para>
/// Mutant <see cref="Mutant.ForcedRecoveryFromCommitted"/>: the rewrite cuts the survivor's log back to the commit index
/// it knows but reports the end of the durable log, losing acknowledged writes inside the reported window.
/// </summary>
public sealed partial class Simulator
{
    private readonly HashSet<int> _destroyed = new();
    /// <summary>Acknowledged writes' entries: op id to (index, entry term, the answering leader's term).</summary>
    private readonly Dictionary<int, (long Index, long Term, long CommitTerm)> _acknowledgedAt = new();
    /// <summary>The history clock at the recovery (null: none happened) and the state the survivor's log held.</summary>
    private long? _recoveredAt;
    /// <summary>The last operation invoked before the recovery.</summary>
    private int _lastOpBeforeRecovery;
    private IReadOnlyDictionary<string, KvState>? _survivorState;

    /// <summary>The tick of the recovery, drawn apart from the run's random stream so a seed without one runs as before.</summary>
    private long ForcedRecoveryTime() =>
        (long)(Options.ChaosTicks / 4 + new Random(Options.Seed ^ 0x0F0CED).Next(Options.ChaosTicks / 2)) * SimOptions.TickUnits;

    /// <summary>A replica answers a write it applied: where its entry is and the term it answers in.</summary>
    internal void ObserveWriteAnswered(int opId, LogEntry e, long leaderTerm) => _acknowledgedAt[opId] = (e.Index, e.Term, leaderTerm);

    /// <summary>
    /// An operation invoked before the recovery that the survivor applies only after it: in the world before the
    /// recovery it never took effect (its entry was not committed there), and after it, it is part of the survivor's
    /// state the second half of the history starts from. So its first apply does not bound it.
    /// </summary>
    private bool InvokedBeforeRecovery(int opId) => _recoveredAt is not null && opId <= _lastOpBeforeRecovery;

    /// <summary>Whether a message comes from a destroyed node (it never arrives: the process and its connections are gone).</summary>
    private bool FromDestroyed(RaftMessage m) => _destroyed.Contains(m.From);

    private void ForceRecovery()
    {
        var rng = new Random(Options.Seed ^ 0x5A1FE);
        var live = _nodes.Where(n => !n.Retired).ToList();
        var newest = live.OrderByDescending(n => n.Disk.Last.Term).ThenByDescending(n => n.Disk.Last.Index).First();
        var voters = newest.Disk.Voters().Where(v => v <= _nodes.Count && !Node(v).Retired).ToArray();
        int total = newest.Disk.Voters().Count;
        int keep = Math.Min(voters.Length, 1 + rng.Next(Math.Max(1, (total - 1) / 2)));
        if (total < 3 || keep < 1 || keep > (total - 1) / 2)
        {
            Fault("forced recovery skipped", $"voters {{{string.Join(",", newest.Disk.Voters())}}}: no minority to keep");
            return;
        }
        rng.Shuffle(voters);
        var survivors = voters.Take(keep).ToHashSet();
        foreach (var n in live.Where(n => !survivors.Contains(n.Id)))
        {
            DropPause(n);
            n.Retire();
            _destroyed.Add(n.Id);
        }
        _held.RemoveAll(FromDestroyed);

        // The survivor with the longest durable log; a write in progress completes first (the product rewrites between iterations).
        var chosen = survivors.Select(Node).OrderByDescending(n => n.Disk.Last.Term).ThenByDescending(n => n.Disk.Last.Index).First();
        DropPause(chosen);
        if (chosen.Up) chosen.Crash(writeCommitted: true);
        var (lastIndex, lastTerm) = chosen.Disk.Last;
        if (Options.Mutant == Mutant.ForcedRecoveryFromCommitted) chosen.Disk.TruncateAfter(Math.Max(chosen.Disk.HardState.Commit, chosen.Disk.Checkpoint.Applied));
        var config = chosen.Disk.Voters();
        var changes = new List<ConfChange>();
        if (!config.Contains(chosen.Id)) changes.Add(new ConfChange(ConfChangeType.PromoteLearner, chosen.Id));
        changes.AddRange(config.Where(v => v != chosen.Id).Order().Select(v => new ConfChange(ConfChangeType.RemoveNode, v)));
        long term = Math.Max(chosen.Disk.HardState.Term, lastTerm) + 1;
        var (from, _) = chosen.Disk.Last;
        var entries = changes.Select((cc, i) => new LogEntry(from + 1 + i, term, EntryType.ConfChange, cc.Encode())).ToArray();
        chosen.Disk.Save(new HardState(term, 0, chosen.Disk.HardState.Commit), entries, dropVote: false);
        Fault("forced recovery", $"voters {{{string.Join(",", config)}}}: {{{string.Join(",", survivors.Order())}}} survive, node {chosen.Id} " +
            $"(log ends at {lastIndex}@{lastTerm}) becomes the only voter in term {term}; destroyed {{{string.Join(",", _destroyed.Order())}}}");

        CheckRecoveryWindow(chosen, lastIndex, lastTerm);
        _survivorState = StateUpTo(chosen);
        _recoveredAt = ++_historyClock;
        _lastOpBeforeRecovery = _nextOpId;
        foreach (var c in _clients.Where(c => c.Current is not null))
        {
            var cur = c.Current!.Value;
            Record(HistoryOp.Unknown(cur.OpId, c.Id, cur.Input, cur.Invoke));
            Next(c);
        }
        foreach (var c in _clients) c.LeaderGuess[0] = chosen.Id;

        // The survivor's applies are the only ones that count from now on.
        long applied = Math.Max(chosen.Machine.Applied, chosen.Disk.Checkpoint.Applied);
        // (Splits are not drawn with a forced recovery: every record here is shard 0's.)
        foreach (var i in _appliedLog.Keys.Where(i => i.Index > applied).ToList()) _appliedLog.Remove(i);
        if (_appliedLog.TryGetValue((0, applied), out var tip)) _committedTip[0] = new LogEntry(applied, tip.Term, EntryType.Normal, tip.Data);
        else _committedTip.Remove(0);
        _leaderOfTerm.Clear();
        _newestLeaderTerm.Clear();
        // Entries are known by (index, term), which is unique in one history of the group only: the new term may be one a
        // lost leader used, so what lost leaders proposed in it or later is forgotten (none of it can ever apply now).
        foreach (var key in _proposedOps.Keys.Where(k => k.Term >= term).ToList())
        {
            _proposedOps.Remove(key);
            _proposer.Remove(key);
        }

        chosen.Start();
        ObserveDurableLog(0);
        _desiredVoters.Clear();
        _desiredVoters.Add(chosen.Id);
        for (int i = 0; i < 2 && _nodes.Count < MaxNodeId; i++) _desiredVoters.Add(CreateNode().Id);
        _membershipBusy = true;
    }

    /// <summary>Every write acknowledged so far whose entry the rule says survives is in the survivor's durable log.</summary>
    private void CheckRecoveryWindow(SimNode survivor, long lastIndex, long lastTerm)
    {
        foreach (var op in _result.History.Where(o => o.Status == OpStatus.Ok && o.Input.Kind != KvOpKind.Get))
        {
            if (!_acknowledgedAt.TryGetValue(op.Id, out var at)) continue;
            Count("acknowledged write at recovery");
            if (at.Index > lastIndex || at.CommitTerm > lastTerm) continue;
            if (!survivor.Disk.Has(at.Index, at.Term))
            {
                Violation($"forced recovery lost {op} (entry {at.Index}@{at.Term}, answered in term {at.CommitTerm}) inside the reported window: " +
                    $"the survivor's log ended at {lastIndex}@{lastTerm}");
                return;
            }
        }
    }

    /// <summary>Each key as the survivor's durable log leaves it: its checkpoint plus every stored entry after it.</summary>
    private static Dictionary<string, KvState> StateUpTo(SimNode survivor)
    {
        var machine = survivor.Disk.Checkpoint.Clone();
        foreach (var e in survivor.Disk.Entries.Where(e => e.Index > machine.Applied)) machine.Apply(e);
        return machine.Keys().ToDictionary(k => k, k =>
        {
            var (value, version) = machine.Get(k);
            return new KvState(value, version);
        });
    }

    /// <summary>The history's check, in two parts around a forced recovery (see the class summary), or whole.</summary>
    private CheckResult CheckHistory(List<HistoryOp> history)
    {
        if (_recoveredAt is not { } cut) return LinearizabilityChecker.Check(history);
        var before = LinearizabilityChecker.Check(history.Where(o => o.Invoke < cut));
        if (before.Outcome != CheckOutcome.Linearizable) return before with { Detail = "before the forced recovery: " + before.Detail };
        var after = LinearizabilityChecker.Check(history.Where(o => o.Invoke > cut), initial: _survivorState);
        return after.Outcome == CheckOutcome.Linearizable
            ? after with { Steps = before.Steps + after.Steps }
            : after with { Detail = "after the forced recovery, from the survivor's state: " + after.Detail };
    }

    private sealed record ForcedRecoveryEvent;
}
