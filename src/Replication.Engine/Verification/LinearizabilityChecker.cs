namespace Replication.Engine.Verification;

/// <summary>
/// Linearizability checker for key-value histories: the Wing–Gong search with Lowe's memoisation, partitioned by key
/// as Porcupine does (a history of independent registers is linearizable iff each key's sub-history is:
/// Herlihy &amp; Wing's locality). The engine's own copy, used by the fault drill (FaultDrill.cs) and meant to replace
/// the simulator's (tests/Replication.Simulation/Linearizability), whose algorithm it follows.
/// <para>
/// Per key: operations become call and return entries in a doubly linked list ordered by time (an unknown operation
/// returns at infinity, or at the bound the history gives it). The search repeatedly picks a pending call that is
/// minimal (no return precedes it in the list), applies it to the model (<see cref="KvModel"/>), and "lifts" it out
/// of the list; when it meets a return whose call was not yet linearized it backtracks. Every (set of linearized
/// operations, model state) configuration is visited at most once (Lowe's cache), which makes typical histories
/// near-linear. Failed operations are dropped (they had no effect); so are reads of unknown outcome (they have none).
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
    public static CheckResult Check(IEnumerable<HistoryOp> history, long maxSteps = DefaultMaxSteps) =>
        Run(history, maxSteps, maxSteps, stopAtFirstViolation: true);

    /// <summary>
    /// Checks every key of <paramref name="history"/>, each with at most <paramref name="maxStepsPerKey"/> steps and all
    /// together with at most <paramref name="maxSteps"/> (keys left when the total runs out are Undecided), and lists
    /// every key that is not linearizable or not decided (the fault drill's use: it reports how many).
    /// </summary>
    public static CheckResult CheckAll(IEnumerable<HistoryOp> history, long maxStepsPerKey, long maxSteps) =>
        Run(history, maxStepsPerKey, maxSteps, stopAtFirstViolation: false);

    private static CheckResult Run(IEnumerable<HistoryOp> history, long maxStepsPerKey, long maxSteps, bool stopAtFirstViolation)
    {
        ArgumentNullException.ThrowIfNull(history);
        var relevant = history.Where(o => o.Status == OpStatus.Ok || (o.Status == OpStatus.Unknown && o.Input.Kind != KvOpKind.Get));
        long steps = 0;
        var violated = new List<string>();
        var undecided = new List<string>();
        string? firstDetail = null;
        int keys = 0;
        foreach (var group in relevant.GroupBy(o => o.Input.Key).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            keys++;
            var ops = group.ToList();
            long budget = Math.Min(maxStepsPerKey, maxSteps - steps);
            var outcome = CheckKey(ops, budget, ref steps);
            if (outcome == CheckOutcome.NotLinearizable)
            {
                violated.Add(group.Key);
                firstDetail ??= Explain(group.Key, ops);
                if (stopAtFirstViolation) break;
            }
            else if (outcome == CheckOutcome.Undecided)
            {
                undecided.Add(group.Key);
                if (stopAtFirstViolation && steps >= maxSteps) break;
            }
        }
        if (violated.Count > 0)
            return new CheckResult(CheckOutcome.NotLinearizable, violated[0], firstDetail!, steps) { ViolatedKeys = violated, UndecidedKeys = undecided, KeysChecked = keys };
        if (undecided.Count > 0)
            return new CheckResult(CheckOutcome.Undecided, undecided[0], $"search budget exhausted on {undecided.Count} key(s), first '{undecided[0]}' ({maxStepsPerKey} steps per key, {maxSteps} in all)", steps)
            { UndecidedKeys = undecided, KeysChecked = keys };
        return new CheckResult(CheckOutcome.Linearizable, null, "", steps) { KeysChecked = keys };
    }

    private sealed class Entry
    {
        public int Op = -1;          // index into ops
        public bool IsCall;
        public long Time;
        public Entry? Match;         // call -> its return
        public Entry? Prev, Next;
    }

    private static CheckOutcome CheckKey(List<HistoryOp> ops, long budget, ref long steps)
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

        var unknown = new bool[n];
        for (int i = 0; i < n; i++) unknown[i] = ops[i].Status == OpStatus.Unknown;
        var linearized = new ulong[(n + 63) / 64];
        var cache = new HashSet<CacheKey>();
        var stack = new Stack<(Entry Call, KvState State, bool UnknownPass)>();
        var state = KvState.Absent;
        var entry = head.Next;
        bool unknownPass = false; // which candidates this scan of the minimal calls tries (see below)
        long start = steps;
        while (head.Next is not null)
        {
            if (++steps - start > budget) return CheckOutcome.Undecided;
            if (entry is null) return CheckOutcome.NotLinearizable; // defensive: cannot happen with a well-formed list
            if (entry.IsCall)
            {
                // Candidates of known outcome are tried first, operations of unknown outcome only when none of those
                // fits. Any order of the minimal calls is complete; this one keeps writes that never took effect (return
                // at infinity, pending to the end) from being linearized at every step, which otherwise multiplies the
                // search by every subset of them: a history with dozens of timed-out writes stays near-linear.
                var op = ops[entry.Op];
                if (unknown[entry.Op] == unknownPass && KvModel.Step(state, op.Input, op.Output, out var next))
                {
                    var bits = (ulong[])linearized.Clone();
                    bits[entry.Op >> 6] |= 1UL << (entry.Op & 63);
                    if (cache.Add(new CacheKey(bits, next)))
                    {
                        stack.Push((entry, state, unknownPass));
                        state = next;
                        linearized = bits;
                        Lift(entry);
                        entry = head.Next;
                        unknownPass = false;
                        continue;
                    }
                }
                entry = entry.Next;
            }
            else if (!unknownPass)
            {
                // The end of the minimal calls: now try those of unknown outcome.
                unknownPass = true;
                entry = head.Next;
            }
            else
            {
                // A return whose call is still pending: this branch cannot be completed. Backtrack.
                if (stack.Count == 0) return CheckOutcome.NotLinearizable;
                var (call, before, pass) = stack.Pop();
                state = before;
                linearized = (ulong[])linearized.Clone(); // the array in hand is a cache key's: never mutate it
                linearized[call.Op >> 6] &= ~(1UL << (call.Op & 63));
                Unlift(call);
                entry = call.Next;
                unknownPass = pass;
            }
        }
        return CheckOutcome.Linearizable;
    }

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

    private static string Explain(string key, List<HistoryOp> ops)
    {
        var lines = ops.OrderBy(o => o.Invoke).Take(60).Select(o => "  " + o);
        string more = ops.Count > 60 ? $"\n  ... {ops.Count - 60} more" : "";
        return $"no linearization of the {ops.Count} operations on key '{key}':\n{string.Join("\n", lines)}{more}";
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
