using Replication.Engine.Raft;

namespace Replication.Simulation.Simulation;

/// <summary>
/// Process pauses and clock drift: the faults that put lease reads in the window where they would
/// be wrong (RaftNode.Read.cs, "Clock contract" and "Drift bound").
///
/// A paused node's time stops while the others' runs on (a GC pause, a frozen VM, SIGSTOP): its
/// ticks are counted as missed, and everything that reaches it (peer messages, client requests, the
/// end of a slow disk write, a snapshot transfer) waits, as bytes wait in its sockets. On resume its
/// host first catches up on the missed ticks as NodeHost.DeliverDueTicks does (at most
/// ElectionTicks/2 through Tick, the rest through Elapse), then handles what waited: each sender's
/// items in their order, the senders interleaved at random, as the transport's reader threads
/// resume in any order (so a client's lease read may be handled before a heartbeat of a newer term
/// that arrived earlier on another connection). The <see cref="Mutant.LeaseCountsDeliveredTicks"/>
/// host catches up as NodeHost did before the fix: one tick, then what waited, then the rest of
/// the missed ticks only when there were at most ten.
///
/// Drift: each node's clock ticks at its own steady rate, within <see cref="SimOptions.ClockDrift"/>
/// of nominal, inside the bound the lease is proved for.
/// </summary>
public sealed partial class Simulator
{
    /// <summary>NodeHost's limit on ticks delivered through the timers in one catch-up (the rest are Elapsed).</summary>
    private int TimerCatchUpTicks => Math.Max(1, Options.ElectionTicks / 2);

    /// <summary>Paused nodes: the work that waits for each, in arrival order, with its source (a node id, a client as its negated id, 0 for the node's own work).</summary>
    private readonly Dictionary<int, List<(int Source, object Event)>> _pausedWork = new();

    private bool IsPaused(int node) => _pausedWork.ContainsKey(node);

    /// <summary>Work for a paused node waits until it resumes.</summary>
    private void Defer(int node, int source, object ev) => _pausedWork[node].Add((source, ev));

    /// <summary>
    /// The pause fault: <paramref name="n"/> stops for <paramref name="ticks"/> ticks of the others'
    /// time. <paramref name="isolateOnResume"/>: it comes back cut off from every other node while
    /// clients still reach it (a frozen leader whose network also failed: it learns of no newer
    /// term, so only its own clock can end its lease).
    /// </summary>
    private void Pause(SimNode n, int ticks, string why, bool isolateOnResume = false)
    {
        if (!n.Up || IsPaused(n.Id)) return;
        _pausedWork[n.Id] = new List<(int, object)>();
        n.MissedTicks = 0;
        Fault("pause", $"node {n.Id}{why} for {ticks} ticks{(isolateOnResume ? ", then it is cut off" : "")}");
        Schedule((long)ticks * SimOptions.TickUnits, new ResumeEvent(n.Id, n.Epoch, isolateOnResume));
        // The whole process stops: the split groups' replicas on its machine too (Simulator.Splits.cs).
        foreach (var s in Siblings(n).Where(s => s.Up && !IsPaused(s.Id)).ToList())
        {
            _pausedWork[s.Id] = new List<(int, object)>();
            s.MissedTicks = 0;
            Schedule((long)ticks * SimOptions.TickUnits, new ResumeEvent(s.Id, s.Epoch, false));
        }
    }

    /// <summary>
    /// A crashed or retired node's pause ends with it: what waited in its sockets is gone. A snapshot
    /// transfer that waited still ends, as lost, so its sender gets the one ReportSnapshot the Ready
    /// contract promises (NodeHost's sender times the transfer out). Bug fixed: the transfer vanished
    /// with the pause, and the leader waited on it forever with that follower never catching up
    /// (seeds 35463 and 58600 of 100,000).
    /// </summary>
    private void DropPause(SimNode n)
    {
        if (!_pausedWork.Remove(n.Id, out var work)) return;
        foreach (var (_, ev) in work)
            if (ev is SnapshotArrivalEvent sa) Schedule(0, sa);
    }

    private void Resume(int id, bool isolate = false)
    {
        if (!_pausedWork.Remove(id, out var work)) return;
        var n = Node(id);
        if (isolate && !_healed) IsolateAlone(id, "on resuming from a pause");
        int missed = n.MissedTicks;
        n.MissedTicks = 0;
        TraceLine(() => $"node {id} resumes: {missed} ticks missed, {work.Count} items waited");
        if (!n.Up) return;
        bool oldHost = Options.Mutant == Mutant.LeaseCountsDeliveredTicks;
        if (oldHost) n.CatchUp(Math.Min(missed, 1), 0);
        else n.CatchUp(Math.Min(missed, TimerCatchUpTicks), missed - Math.Min(missed, TimerCatchUpTicks));
        // Senders interleaved at random, each one's items in order.
        var bySource = work.GroupBy(w => w.Source).Select(g => new Queue<(int Source, object Event)>(g)).ToList();
        while (bySource.Count > 0)
        {
            int i = _rng.Next(bySource.Count);
            var (source, ev) = bySource[i].Dequeue();
            Schedule(0, new ResumedWork(id, n.Epoch, source, ev));
            if (bySource[i].Count == 0) bySource.RemoveAt(i);
        }
        if (oldHost && missed > 1 && missed <= 10) Schedule(0, new CatchUpEvent(id, n.Epoch, missed - 1));
    }

    /// <summary>Work that waited for a paused node, handled after it resumed (it already reached the node: no partition applies).</summary>
    private void DispatchResumed(ResumedWork w)
    {
        var n = Node(w.Node);
        if (!n.Up || n.Epoch != w.Epoch)
        {
            // Crashed after it resumed, before this was handled: a snapshot transfer still ends, as lost (see DropPause).
            // Bug fixed: the sender waited on it forever (ClockDriftBeyondBound seed 35, once machines crashed whole).
            if (w.Event is SnapshotArrivalEvent sa) Schedule(0, sa);
            return;
        }
        if (IsPaused(w.Node))
        {
            Defer(w.Node, w.Source, w.Event); // paused again before it was handled
            return;
        }
        switch (w.Event)
        {
            case DeliverEvent d:
                if (FromDestroyed(d.Message)) return;
                TraceLine(d.Message.ToString);
                if (d.Message.Type == MessageType.TimeoutNow) OnHandover(d.Message);
                n.Step(d.Message);
                break;
            default:
                Dispatch(w.Event);
                break;
        }
    }

    /// <summary>Draws a node's clock rate: its tick period in thousandths of a time unit.</summary>
    private int DrawTickPeriod() =>
        (int)Math.Round(SimOptions.TickUnits * 1000 * (1 + Options.ClockDrift * (2 * _rng.NextDouble() - 1)));

    private sealed record ResumeEvent(int Node, int Epoch, bool Isolate);
    private sealed record ResumedWork(int Node, int Epoch, int Source, object Event);
    private sealed record CatchUpEvent(int Node, int Epoch, int Ticks);
}
