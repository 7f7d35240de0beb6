using Replication.Engine.Raft;

namespace Replication.Simulation.Simulation;

/// <summary>
/// Quiescence (RaftNode.Quiesce.cs), on in the seeds that draw <see cref="SimOptions.Quiesce"/>: the cores run with
/// <see cref="RaftConfig.Quiesce"/>, and each machine sends the others its liveness signal every
/// <see cref="LivenessTicks"/> of its own ticks, as NodeHost does (NodeHost.Liveness.cs). A signal travels like a
/// message (dropped, delayed, reordered, stopped by partitions; it waits while its receiver is paused and is handled
/// when it resumes, stale by then, as bytes in a socket would be) and is fed to every replica of the receiving machine
/// through <see cref="RaftNode.HeardFrom"/> for each member of its group the sending machine hosts. The clients fall
/// silent in quiet spells (<see cref="SimOptions.QuietEveryTicks"/>), so groups quiesce during the faults: crashes,
/// pauses and partitions then hit quiesced leaders and followers, and the checks (one leader per term, a lease held only
/// by the newest leader, linearizability, progress after healing) cover them.
/// </summary>
public sealed partial class Simulator
{
    /// <summary>Ticks between two liveness signals of a machine: as NodeHost's (NodeHost.Liveness.cs).</summary>
    private int LivenessTicks => Math.Max(Options.HeartbeatTicks, Options.ElectionTicks / 3);

    /// <summary>After a tick of <paramref name="n"/>: a machine (its shard-0 replica, or a replica that is its own anchor) sends its liveness signal when due.</summary>
    private void MaybeSendLiveness(SimNode n)
    {
        if (!Options.Quiesce || n.Anchor != n.Id || !n.Up || ++n.LivenessPhase < LivenessTicks) return;
        n.LivenessPhase = 0;
        foreach (int to in AllNodes.Where(x => x.Anchor == x.Id && x.Id != n.Id && !x.Retired).Select(x => x.Id))
        {
            if (Blocked(n.Id, to) || (!_healed && _rng.NextDouble() < Options.DropRate))
            {
                Count("liveness signal lost");
                continue;
            }
            Schedule(1 + _rng.Next(3), new LivenessEvent(n.Id, to));
        }
    }

    private void OnLiveness(LivenessEvent e)
    {
        var machine = Node(e.To);
        if (!machine.Up || Blocked(e.From, e.To)) return;
        if (IsPaused(e.To))
        {
            Defer(e.To, e.From, e);
            return;
        }
        Mix(10, e.From, e.To, 0, 0, 0);
        foreach (var r in AllNodes.Where(r => r.Anchor == e.To && r.Up && !IsPaused(r.Id)))
        {
            var core = r.Core!;
            foreach (int member in core.Voters.Concat(core.Learners).ToList())
                if (Exists(member) && Node(member).Anchor == e.From) core.HeardFrom(member);
        }
        Count("liveness signal");
    }

    /// <summary>
    /// When a client's next operation may go out: <paramref name="delay"/> from now, moved past the quiet spell it would
    /// fall in (clients are silent for <see cref="SimOptions.QuietTicks"/> of every <see cref="SimOptions.QuietEveryTicks"/>).
    /// </summary>
    private long PastQuietSpell(long delay)
    {
        if (!Options.Quiesce || Options.QuietEveryTicks == 0) return delay;
        long every = (long)Options.QuietEveryTicks * SimOptions.TickUnits, quiet = (long)Options.QuietTicks * SimOptions.TickUnits;
        long at = Now + delay, phase = at % every;
        long later = phase < quiet ? at - phase + quiet : at;
        return Math.Max(0, Math.Min(later, ChaosEnd) - Now);
    }

    /// <summary>A machine's liveness signal to another machine (ids of their anchors).</summary>
    private sealed record LivenessEvent(int From, int To);
}
