namespace Replication.Engine.Verification;

/// <summary>
/// Linearizability checker for key-value histories: the Wing–Gong search with Lowe's memoisation, partitioned by key
/// as Porcupine does (a history of independent registers is linearizable iff each key's sub-history is:
/// Herlihy &amp; Wing's locality). The one checker of the repository: the fault drill (FaultDrill.cs), the simulator
/// (tests/Replication.Simulation) and the engine tests' recorded histories all use it.
/// <para>
/// Per key: when the recorder gives every operation the place it took effect (<see cref="HistoryOp.At"/>), that order
/// is tried first as a linearization, which decides a correct history in one pass. Otherwise operations become call
/// and return entries in a doubly linked list ordered by time (an unknown operation returns at infinity, or at the
/// bound the history gives it). The search repeatedly picks a pending call that is minimal (no return precedes it in
/// the list), applies it to the model (<see cref="KvModel"/>), and "lifts" it out of the list; when no minimal call
/// fits it backtracks. Every (set of linearized operations, model state) configuration is visited at most once
/// (Lowe's cache), which makes typical histories near-linear. Failed operations are dropped (they had no effect); so
/// are reads of unknown outcome (they have none).
/// </para>
/// <para>
/// The search is bounded: a key whose search exceeds its step budget is <see cref="CheckOutcome.Undecided"/> — reported
/// as such, never counted as linearizable. Stateless and thread-safe.
/// </para>
/// </summary>
public static class LinearizabilityChecker
{
    /// <summary>Default total budget of <see cref="Check"/> (search steps; a step is one list move, well under a microsecond).</summary>
    public const long DefaultMaxSteps = 5_000_000;

    /// <summary>
    /// Checks <paramref name="history"/> and stops at the first key that is not linearizable (the simulator's use: one
    /// counterexample is enough). Keys are checked in ordinal order; <paramref name="maxSteps"/> bounds the total work.
    /// </summary>
    /// <param name="initial">The state every key starts in (a key it does not name starts absent); null = all absent. The
    /// simulator's forced recovery checks the history after the recovery from what the survivor held.</param>
    public static CheckResult Check(IEnumerable<HistoryOp> history, long maxSteps = DefaultMaxSteps, IReadOnlyDictionary<string, KvState>? initial = null) =>
        Run(history, maxSteps, maxSteps, stopAtFirstViolation: true, initial);

    /// <summary>
    /// Checks every key of <paramref name="history"/>, each with at most <paramref name="maxStepsPerKey"/> steps and all
    /// together with at most <paramref name="maxSteps"/> (keys left when the total runs out are Undecided), and lists
    /// every key that is not linearizable or not decided (the fault drill's use: it reports how many).
    /// </summary>
    public static CheckResult CheckAll(IEnumerable<HistoryOp> history, long maxStepsPerKey, long maxSteps) =>
        Run(history, maxStepsPerKey, maxSteps, stopAtFirstViolation: false, initial: null);

    private static CheckResult Run(IEnumerable<HistoryOp> history, long maxStepsPerKey, long maxSteps, bool stopAtFirstViolation,
        IReadOnlyDictionary<string, KvState>? initial)
    {
        ArgumentNullException.ThrowIfNull(history);
        var relevant = history.Where(o => o.Status == OpStatus.Ok || (o.Status == OpStatus.Unknown && o.Input.Kind != KvOpKind.Get));
        long steps = 0;
        var violated = new List<string>();
        var undecided = new List<string>();
        string? firstDetail = null;
        string? undecidedBreak = null;
        int keys = 0;
        foreach (var group in relevant.GroupBy(o => o.Input.Key).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            keys++;
            var ops = group.ToList();
            var start = initial is not null && initial.TryGetValue(group.Key, out var given) ? given : KvState.Absent;
            // The recorder's own order, when it gives one for every operation, is tried first: if it is a
            // linearization, the key is decided without a search.
            string? broken = ops.All(o => o.At is not null) ? OrderBreak(ops, start) : "no order recorded for every operation";
            if (broken is null)
            {
                steps += ops.Count;
                continue;
            }
            long budget = Math.Min(maxStepsPerKey, maxSteps - steps);
            var outcome = CheckKey(ops, start, budget, ref steps);
            if (outcome == CheckOutcome.NotLinearizable)
            {
                violated.Add(group.Key);
                firstDetail ??= Explain(group.Key, ops, broken);
                if (stopAtFirstViolation) break;
            }
            else if (outcome == CheckOutcome.Undecided)
            {
                undecided.Add(group.Key);
                undecidedBreak ??= broken;
                if (stopAtFirstViolation && steps >= maxSteps) break;
            }
        }
        if (violated.Count > 0)
            return new CheckResult(CheckOutcome.NotLinearizable, violated[0], firstDetail!, steps) { ViolatedKeys = violated, UndecidedKeys = undecided, KeysChecked = keys };
        if (undecided.Count > 0)
            return new CheckResult(CheckOutcome.Undecided, undecided[0], $"search budget exhausted on {undecided.Count} key(s), first '{undecided[0]}' ({maxStepsPerKey} steps per key, {maxSteps} in all); the recorded order: {undecidedBreak}", steps)
            { UndecidedKeys = undecided, KeysChecked = keys };
        return new CheckResult(CheckOutcome.Linearizable, null, "", steps) { KeysChecked = keys };
    }

    /// <summary>
    /// Checks the order the recorder gave (<see cref="HistoryOp.At"/>, ties by invocation) as a
    /// linearization: real time (no operation ordered after one that was invoked after it returned)
    /// and the model (each output fits the state before it). Returns null when it is one, else why
    /// not, naming the first operation at fault: a pointer to a stale read or a lost write. A valid
    /// order proves the history linearizable; an invalid one proves nothing (another order may do),
    /// so the search decides then.
    /// </summary>
    private static string? OrderBreak(List<HistoryOp> ops, KvState start)
    {
        var order = ops.OrderBy(o => o.At!.Value).ThenBy(o => o.Invoke).ThenBy(o => o.Id).ToList();
        var laterMin = new HistoryOp?[order.Count + 1]; // the earliest-returning operation at or after each position
        for (int i = order.Count - 1; i >= 0; i--)
            laterMin[i] = laterMin[i + 1] is { } m && m.Return <= order[i].Return ? m : order[i];
        var state = start;
        for (int i = 0; i < order.Count; i++)
        {
            var o = order[i];
            if (laterMin[i + 1] is { } early && early.Return < o.Invoke)
                return $"{o} is ordered before {early}, which returned before it was invoked";
            if (!KvModel.Step(state, o.Input, o.Output, out var next))
                return $"{o} does not fit the state {state} the log order gives it";
            state = next;
        }
        return null;
    }

    private sealed class Entry
    {
        public int Op = -1;          // index into ops
        public bool IsCall;
        public long Time;
        public Entry? Match;         // call -> its return
        public Entry? Prev, Next;
    }

    private static CheckOutcome CheckKey(List<HistoryOp> ops, KvState initial, long budget, ref long steps)
    {
        if (budget <= 0) return CheckOutcome.Undecided;
        int n = ops.Count;
        var entries = new List<Entry>(2 * n);
        for (int i = 0; i < n; i++)
        {
            var o = ops[i];
            long ret = o.Return; // an unknown operation returns at infinity unless the history bounds it
            if (ret < o.Invoke) throw new ArgumentException($"Operation {o} returns before it is invoked.", nameof(ops));
            var call = new Entry { Op = i, IsCall = true, Time = o.Invoke };
            var r = new Entry { Op = i, IsCall = false, Time = ret };
            call.Match = r;
            entries.Add(call);
            entries.Add(r);
        }
        // By time; at equal times calls come first (treating touching operations as concurrent
        // only ever accepts more histories, so it cannot produce a false violation).
        entries.Sort((a, b) => a.Time != b.Time ? a.Time.CompareTo(b.Time) : (a.IsCall == b.IsCall ? a.Op.CompareTo(b.Op) : (a.IsCall ? -1 : 1)));
        var head = new Entry();
        var prev = head;
        foreach (var e in entries)
        {
            prev.Next = e;
            e.Prev = prev;
            prev = e;
        }

        // Depth-first search over configurations (the operations linearized so far, and the state
        // they led to). Each frame holds the candidates of one configuration: the minimal calls (no
        // return precedes them in the list), in the order they returned. Trying first the operation
        // that must take effect soonest follows the order in which a correct system applied them;
        // trying them by invocation instead made a burst of long timed-out writes (applied together,
        // seconds after their invocation) interleave with everything before it, needing millions of
        // steps to find what this order finds at once. The order changes the work, never the verdict.
        var linearized = new ulong[(n + 63) / 64];
        var cache = new HashSet<CacheKey>();
        var state = initial;
        var frames = new Stack<Frame>();
        frames.Push(new Frame(null, state, Candidates(head, ops, state)));
        long start = steps;
        while (head.Next is not null)
        {
            if (++steps - start > budget) return CheckOutcome.Undecided;
            var frame = frames.Peek();
            if (frame.Next == frame.Candidates.Count)
            {
                // Every choice here failed: undo the step that led here.
                frames.Pop();
                if (frame.Via is null) return CheckOutcome.NotLinearizable;
                Unlift(frame.Via);
                state = frame.Before;
                linearized[frame.Via.Op >> 6] &= ~(1UL << (frame.Via.Op & 63));
                continue;
            }
            var call = frame.Candidates[frame.Next++];
            var op = ops[call.Op];
            if (!KvModel.Step(state, op.Input, op.Output, out var next)) continue;
            var bits = (ulong[])linearized.Clone();
            bits[call.Op >> 6] |= 1UL << (call.Op & 63);
            if (!cache.Add(new CacheKey(bits, next))) continue; // explored before (Lowe), and it failed
            Lift(call);
            frames.Push(new Frame(call, state, Candidates(head, ops, next)));
            state = next;
            linearized = bits;
        }
        return CheckOutcome.Linearizable;
    }

    /// <summary>One configuration of the search: the call lifted to reach it, the state before that, and its candidates.</summary>
    private sealed class Frame(Entry? via, KvState before, List<Entry> candidates)
    {
        public Entry? Via { get; } = via;
        public KvState Before { get; } = before;
        public List<Entry> Candidates { get; } = candidates;
        public int Next { get; set; }
    }

    /// <summary>
    /// The calls that may be linearized next: those before the first return in the list, by return
    /// time. When one of them is read-only and consistent with <paramref name="state"/>, it alone
    /// (see <see cref="IsReadOnly"/>: the others need not be tried).
    /// </summary>
    private static List<Entry> Candidates(Entry head, List<HistoryOp> ops, KvState state)
    {
        var calls = new List<Entry>();
        for (var e = head.Next; e is not null && e.IsCall; e = e.Next)
        {
            var op = ops[e.Op];
            if (IsReadOnly(op) && KvModel.Step(state, op.Input, op.Output, out _)) return new List<Entry> { e };
            calls.Add(e);
        }
        calls.Sort((a, b) => a.Match!.Time != b.Match!.Time ? a.Match.Time.CompareTo(b.Match.Time) : a.Op.CompareTo(b.Op));
        return calls;
    }

    /// <summary>
    /// An operation that leaves every state it is consistent with unchanged: a get, a compare-and-set
    /// that did not apply, a delete of an absent key, each with its answer. If such an operation is
    /// minimal (every operation that returned before it was invoked is already linearized) and
    /// consistent with the current state, some linearization of the rest exists iff one exists that
    /// puts it first: in any other, moving it forward to here breaks no real-time order (nothing left
    /// must precede it) and changes no state (it sees this state and leaves it). So the search takes
    /// it at once and never tries the alternatives, which prunes the interleavings of reads with
    /// writes that made histories with many concurrent reads undecidable within the budget.
    /// </summary>
    private static bool IsReadOnly(HistoryOp op) => op.Output is { } o && (op.Input.Kind == KvOpKind.Get
        || (op.Input.Kind is KvOpKind.Cas or KvOpKind.Delete && !o.Applied));

    private static void Lift(Entry call)
    {
        call.Prev!.Next = call.Next;
        call.Next!.Prev = call.Prev;
        var ret = call.Match!;
        ret.Prev!.Next = ret.Next;
        if (ret.Next is not null) ret.Next.Prev = ret.Prev;
    }

    private static void Unlift(Entry call)
    {
        var ret = call.Match!;
        ret.Prev!.Next = ret;
        if (ret.Next is not null) ret.Next.Prev = ret;
        call.Prev!.Next = call;
        call.Next!.Prev = call;
    }

    private static string Explain(string key, List<HistoryOp> ops, string broken)
    {
        var lines = ops.OrderBy(o => o.Invoke).Take(60).Select(o => "  " + o);
        string more = ops.Count > 60 ? $"\n  ... {ops.Count - 60} more" : "";
        return $"no linearization of the {ops.Count} operations on key '{key}' (the recorded order: {broken}):\n{string.Join("\n", lines)}{more}";
    }

    /// <summary>Lowe's memo key: which operations are linearized, and the model state they led to. The bit array is never
    /// mutated once in a key (the search clones before every change).</summary>
    private readonly struct CacheKey(ulong[] bits, KvState state) : IEquatable<CacheKey>
    {
        private readonly ulong[] _bits = bits;
        private readonly KvState _state = state;
        private readonly int _hash = Hash(bits, state);

        private static int Hash(ulong[] bits, KvState state)
        {
            var h = new HashCode();
            foreach (ulong b in bits) h.Add(b);
            h.Add(state.Version);
            h.Add(state.Value is null ? 0 : StringComparer.Ordinal.GetHashCode(state.Value));
            return h.ToHashCode();
        }

        public bool Equals(CacheKey other) =>
            _hash == other._hash && _state == other._state && _bits.AsSpan().SequenceEqual(other._bits);

        public override bool Equals(object? obj) => obj is CacheKey k && Equals(k);
        public override int GetHashCode() => _hash;
    }
}
