namespace Replication.Simulation.Linearizability;

/// <summary>Verdict of a linearizability check.</summary>
public enum CheckOutcome
{
    Linearizable,
    NotLinearizable,
    /// <summary>The search budget ran out before a verdict: neither accepted nor rejected.</summary>
    Unknown,
}

/// <summary>The verdict, with the key that decided it and a readable explanation when not linearizable.</summary>
public sealed record CheckResult(CheckOutcome Outcome, string? Key, string Detail, long Steps);

/// <summary>
/// Linearizability checker for key-value histories: the Wing–Gong search with Lowe's
/// memoisation, partitioned by key as Porcupine does (a history of independent registers is
/// linearizable iff each key's sub-history is: P-compositionality, Herlihy &amp; Wing's locality).
///
/// Per key: operations become call and return entries in a doubly linked list ordered by time
/// (an unknown operation returns at infinity, or at the bound the history gives it). The search repeatedly picks a pending call that
/// is minimal (no return precedes it in the list), applies it to the model, and "lifts" it out
/// of the list; when it meets a return whose call was not yet linearized it backtracks. Every
/// (set of linearized operations, model state) configuration is visited at most once (Lowe's
/// cache), which makes typical histories near-linear. Failed operations are dropped (they had no
/// effect); so are reads without an answer (they have none). <paramref name="maxSteps"/> bounds
/// the total work: exceeding it yields <see cref="CheckOutcome.Unknown"/>, never a hang.
/// Stateless and thread-safe.
/// </summary>
public static class LinearizabilityChecker
{
    public const long DefaultMaxSteps = 5_000_000;

    public static CheckResult Check(IEnumerable<HistoryOp> history, long maxSteps = DefaultMaxSteps)
    {
        var relevant = history.Where(o => o.Status == OpStatus.Ok || (o.Status == OpStatus.Unknown && o.Input.Kind != KvOpKind.Get));
        long steps = 0;
        bool unknown = false;
        string? unknownKey = null;
        foreach (var group in relevant.GroupBy(o => o.Input.Key).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var ops = group.ToList();
            var outcome = CheckKey(ops, maxSteps - steps, ref steps);
            if (outcome == CheckOutcome.NotLinearizable)
                return new CheckResult(CheckOutcome.NotLinearizable, group.Key, Explain(group.Key, ops), steps);
            if (outcome == CheckOutcome.Unknown)
            {
                unknown = true;
                unknownKey ??= group.Key;
                if (steps >= maxSteps) break;
            }
        }
        return unknown
            ? new CheckResult(CheckOutcome.Unknown, unknownKey, $"search budget of {maxSteps} steps exhausted on key '{unknownKey}'", steps)
            : new CheckResult(CheckOutcome.Linearizable, null, "", steps);
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
        if (budget <= 0) return CheckOutcome.Unknown;
        int n = ops.Count;
        var entries = new List<Entry>(2 * n);
        for (int i = 0; i < n; i++)
        {
            var o = ops[i];
            long ret = o.Return; // an unknown operation returns at infinity unless the history bounds it
            if (ret < o.Invoke) throw new ArgumentException($"Operation {o} returns before it is invoked.");
            var call = new Entry { Op = i, IsCall = true, Time = o.Invoke };
            var r = new Entry { Op = i, IsCall = false, Time = ret };
            call.Match = r;
            entries.Add(call);
            entries.Add(r);
        }
        // By time; at equal times calls come first (treating touching operations as concurrent
        // only ever accepts more histories, so it cannot produce a false violation).
        entries.Sort((a, b) => a.Time != b.Time ? a.Time.CompareTo(b.Time) : (a.IsCall == b.IsCall ? a.Op.CompareTo(b.Op) : (a.IsCall ? -1 : 1)));
        // Search order: within each run of consecutive calls (no return between them, so every one
        // of them stands in the same real-time relation to every return), try first the operation
        // that returned first. Only the order of the search changes, never its outcome; but a
        // history from a correct system then tends to be linearized in the order its operations
        // took effect (a burst of timed-out writes applied together returns in log order), which
        // needs almost no backtracking where invocation order needed millions of steps.
        for (int run = 0; run < entries.Count;)
        {
            int end = run;
            while (end < entries.Count && entries[end].IsCall) end++;
            if (end - run > 1)
                entries.Sort(run, end - run, Comparer<Entry>.Create((a, b) =>
                    a.Match!.Time != b.Match!.Time ? a.Match.Time.CompareTo(b.Match.Time) : a.Op.CompareTo(b.Op)));
            run = Math.Max(end, run + 1);
        }
        var head = new Entry();
        var prev = head;
        foreach (var e in entries)
        {
            prev.Next = e;
            e.Prev = prev;
            prev = e;
        }

        var linearized = new ulong[(n + 63) / 64];
        var cache = new HashSet<CacheKey>();
        var stack = new Stack<(Entry Call, KvState State, bool Forced)>();
        var state = KvState.Absent;
        var entry = head.Next;
        long start = steps;
        while (head.Next is not null)
        {
            if (++steps - start > budget) return CheckOutcome.Unknown;
            if (entry == head.Next && FirstReadOnly(head, ops, state) is { } ro)
            {
                // A fresh configuration where a read-only operation can go next: it goes next, and
                // the other choices here need no search (see IsReadOnly).
                var roBits = With(linearized, ro.Op);
                if (cache.Add(new CacheKey(roBits, state)))
                {
                    stack.Push((ro, state, true));
                    linearized = roBits;
                    Lift(ro);
                    entry = head.Next;
                }
                else if (!Backtrack()) return CheckOutcome.NotLinearizable; // explored before, and failed
                continue;
            }
            if (entry is null) return CheckOutcome.NotLinearizable; // defensive: cannot happen with a well-formed list
            if (entry.IsCall)
            {
                var op = ops[entry.Op];
                if (KvModel.Step(state, op.Input, op.Output, out var next))
                {
                    var bits = With(linearized, entry.Op);
                    if (cache.Add(new CacheKey(bits, next)))
                    {
                        stack.Push((entry, state, false));
                        state = next;
                        linearized = bits;
                        Lift(entry);
                        entry = head.Next;
                        continue;
                    }
                }
                entry = entry.Next;
            }
            else if (!Backtrack()) return CheckOutcome.NotLinearizable; // a return whose call is still pending
        }
        return CheckOutcome.Linearizable;

        // Undoes the latest choice that had alternatives (forced read-only steps had none) and
        // resumes with the next candidate after it; false when no choice is left.
        bool Backtrack()
        {
            while (stack.Count > 0)
            {
                var (call, before, forced) = stack.Pop();
                state = before;
                linearized[call.Op >> 6] &= ~(1UL << (call.Op & 63));
                Unlift(call);
                if (forced) continue;
                entry = call.Next;
                return true;
            }
            return false;
        }
    }

    private static ulong[] With(ulong[] bits, int op)
    {
        var copy = (ulong[])bits.Clone();
        copy[op >> 6] |= 1UL << (op & 63);
        return copy;
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

    /// <summary>The first minimal call (before any return in the list) that is read-only and consistent with <paramref name="state"/>.</summary>
    private static Entry? FirstReadOnly(Entry head, List<HistoryOp> ops, KvState state)
    {
        for (var e = head.Next; e is not null && e.IsCall; e = e.Next)
        {
            var op = ops[e.Op];
            if (IsReadOnly(op) && KvModel.Step(state, op.Input, op.Output, out _)) return e;
        }
        return null;
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

    /// <summary>Lowe's memo key: which operations are linearized, and the model state they led to.</summary>
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
