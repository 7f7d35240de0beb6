using Replication.Engine.Verification;
using Xunit;

namespace Replication.Engine.Tests.Linearizability;

/// <summary>Hand-written histories for the checker: accepted when linearizable, rejected when not, bounded always.</summary>
public sealed class LinearizabilityCheckerTests
{
    private static int _id;
    private static HistoryOp Ok(int client, KvInput input, long invoke, long ret, KvOutput output) => HistoryOp.Ok(++_id, client, input, invoke, ret, output);
    private static KvInput Put(string v, string key = "x") => new(KvOpKind.Put, key, v);
    private static KvInput Get(string key = "x") => new(KvOpKind.Get, key);
    private static KvInput Del(string key = "x") => new(KvOpKind.Delete, key);
    private static KvInput Cas(long expected, string v, string key = "x") => new(KvOpKind.Cas, key, v, expected);
    private static KvOutput Version(long v) => new(true, null, v);
    private static KvOutput Read(string? value, long version) => new(value is not null, value, version);

    [Fact]
    public void SequentialHistoryIsLinearizable()
    {
        var h = new[]
        {
            Ok(1, Put("a"), 1, 2, Version(1)),
            Ok(1, Get(), 3, 4, Read("a", 1)),
            Ok(1, Cas(1, "b"), 5, 6, Version(2)),
            Ok(1, Cas(1, "c"), 7, 8, new KvOutput(false, null, 2)),
            Ok(1, Del(), 9, 10, new KvOutput(true, null, 0)),
            Ok(1, Get(), 11, 12, Read(null, 0)),
            Ok(1, Put("d"), 13, 14, Version(1)), // versions restart at 1 after a delete
        };
        Assert.Equal(CheckOutcome.Linearizable, LinearizabilityChecker.Check(h).Outcome);
    }

    [Fact]
    public void ConcurrentOperationsMayTakeEitherOrder()
    {
        // The read overlaps the put: both the old and the new value are acceptable.
        var h = new[]
        {
            Ok(1, Put("a"), 1, 2, Version(1)),
            Ok(1, Put("b"), 3, 6, Version(2)),
            Ok(2, Get(), 4, 5, Read("a", 1)),
            Ok(3, Get(), 4, 7, Read("b", 2)),
        };
        Assert.Equal(CheckOutcome.Linearizable, LinearizabilityChecker.Check(h).Outcome);
    }

    [Fact]
    public void StaleReadAfterAcknowledgedWriteIsRejected()
    {
        var h = new[]
        {
            Ok(1, Put("a"), 1, 2, Version(1)),
            Ok(1, Put("b"), 3, 4, Version(2)),
            Ok(2, Get(), 5, 6, Read("a", 1)),
        };
        var r = LinearizabilityChecker.Check(h);
        Assert.Equal(CheckOutcome.NotLinearizable, r.Outcome);
        Assert.Equal("x", r.Key);
    }

    [Fact]
    public void LostUpdateIsRejected()
    {
        // Two CAS from the same version both succeed: one update was lost.
        var h = new[]
        {
            Ok(1, Put("a"), 1, 2, Version(1)),
            Ok(1, Cas(1, "b"), 3, 6, Version(2)),
            Ok(2, Cas(1, "c"), 4, 5, Version(2)),
        };
        Assert.Equal(CheckOutcome.NotLinearizable, LinearizabilityChecker.Check(h).Outcome);
    }

    [Fact]
    public void AcknowledgedWriteMissingFromFinalReadIsRejected()
    {
        var h = new[]
        {
            Ok(1, Put("a"), 1, 2, Version(1)),
            Ok(2, Get(), 10, 11, Read(null, 0)),
        };
        Assert.Equal(CheckOutcome.NotLinearizable, LinearizabilityChecker.Check(h).Outcome);
    }

    [Fact]
    public void ReadOfValueNeverWrittenIsRejected()
    {
        var h = new[]
        {
            Ok(1, Put("a"), 1, 4, Version(1)),
            Ok(2, Get(), 2, 3, Read("zzz", 1)),
        };
        Assert.Equal(CheckOutcome.NotLinearizable, LinearizabilityChecker.Check(h).Outcome);
    }

    [Fact]
    public void TimedOutWriteMayTakeEffectLater()
    {
        // The put timed out at the client; a read long after sees it. Linearizable: it took effect late.
        var h = new[]
        {
            HistoryOp.Unknown(++_id, 1, Put("a"), 1),
            Ok(2, Get(), 5, 6, Read(null, 0)),
            Ok(2, Get(), 7, 8, Read("a", 1)),
        };
        Assert.Equal(CheckOutcome.Linearizable, LinearizabilityChecker.Check(h).Outcome);
    }

    [Fact]
    public void TimedOutWriteMayNeverTakeEffect()
    {
        var h = new[]
        {
            HistoryOp.Unknown(++_id, 1, Put("a"), 1),
            Ok(2, Get(), 5, 6, Read(null, 0)),
        };
        Assert.Equal(CheckOutcome.Linearizable, LinearizabilityChecker.Check(h).Outcome);
    }

    [Fact]
    public void TimedOutWriteCannotTakeEffectBeforeItsInvocation()
    {
        var h = new[]
        {
            Ok(2, Get(), 1, 2, Read("a", 1)),
            HistoryOp.Unknown(++_id, 1, Put("a"), 3),
        };
        Assert.Equal(CheckOutcome.NotLinearizable, LinearizabilityChecker.Check(h).Outcome);
    }

    [Fact]
    public void FailedOperationsAreIgnored()
    {
        var h = new[]
        {
            HistoryOp.Failed(++_id, 1, Put("a"), 1, 2),
            Ok(2, Get(), 3, 4, Read(null, 0)),
        };
        Assert.Equal(CheckOutcome.Linearizable, LinearizabilityChecker.Check(h).Outcome);
    }

    [Fact]
    public void KeysAreCheckedIndependently()
    {
        var h = new[]
        {
            Ok(1, Put("a", "x"), 1, 2, Version(1)),
            Ok(1, Put("b", "y"), 3, 4, Version(1)),
            Ok(2, Get("y"), 5, 6, Read("b", 1)),
            Ok(2, Get("x"), 7, 8, Read(null, 0)), // stale on x only
        };
        var r = LinearizabilityChecker.Check(h);
        Assert.Equal(CheckOutcome.NotLinearizable, r.Outcome);
        Assert.Equal("x", r.Key);
    }

    [Fact]
    public void SearchEffortIsBoundedAndReportsUnknown()
    {
        // Many concurrent timed-out CAS ops plus a read no ordering can explain: the search space
        // is exponential, so a small budget must stop with Unknown instead of hanging.
        var h = new List<HistoryOp> { Ok(1, Put("a"), 1, 2, Version(1)) };
        for (int i = 0; i < 40; i++) h.Add(HistoryOp.Unknown(++_id, 10 + i, Cas(1 + i % 3, "v" + i), 3 + i));
        h.Add(Ok(2, Get(), 100, 101, Read("never", 99)));
        var r = LinearizabilityChecker.Check(h, maxSteps: 10_000);
        Assert.Equal(CheckOutcome.Undecided, r.Outcome);
        Assert.True(r.Steps <= 10_001, $"took {r.Steps} steps");
    }

    [Fact]
    public void RecordedOrderDecidesWithoutSearchAndNamesTheStaleRead()
    {
        // Writes at log indexes 1 and 2, reads after them (At = 2 * index, + 1 for a read after an entry).
        var good = new[]
        {
            Ok(1, Put("a"), 1, 10, Version(1)) with { At = 2 },
            Ok(2, Put("b"), 2, 11, Version(2)) with { At = 4 },
            Ok(3, Get(), 3, 12, Read("b", 2)) with { At = 5 },
            Ok(3, Get(), 13, 14, Read("b", 2)) with { At = 5 },
        };
        var r = LinearizabilityChecker.Check(good);
        Assert.Equal(CheckOutcome.Linearizable, r.Outcome);
        Assert.Equal(good.Length, r.Steps); // one step per operation: no search

        // A read served at index 1 after the write at index 2 was acknowledged: the order breaks
        // there, the search confirms there is no linearization at all, and the verdict names it.
        var stale = new[]
        {
            Ok(1, Put("a"), 1, 2, Version(1)) with { At = 2 },
            Ok(2, Put("b"), 3, 4, Version(2)) with { At = 4 },
            Ok(3, Get(), 5, 6, Read("a", 1)) with { At = 3 },
        };
        var s = LinearizabilityChecker.Check(stale);
        Assert.Equal(CheckOutcome.NotLinearizable, s.Outcome);
        Assert.Contains("get(x) [5, 6] Ok ok a v1 at 1+ is ordered before #", s.Detail);
    }

    /// <summary>
    /// Property test: on small random histories the checker (with its memoisation and its eager
    /// read-only steps) agrees with a brute force that tries every order of the operations. Reads,
    /// failed compare-and-sets and deletes of absent keys are plentiful, so the eager rule is
    /// exercised, and so are timed-out writes with and without a known result.
    /// </summary>
    [Fact]
    public void AgreesWithBruteForceOnRandomHistories()
    {
        var rng = new Random(7);
        int rejected = 0;
        for (int round = 0; round < 3000; round++)
        {
            var h = RandomHistory(rng, 2 + rng.Next(6));
            bool expected = BruteForce(h);
            var actual = LinearizabilityChecker.Check(h).Outcome;
            Assert.True(actual == (expected ? CheckOutcome.Linearizable : CheckOutcome.NotLinearizable),
                $"round {round}: brute force says {expected}, checker {actual}:\n  {string.Join("\n  ", h)}");
            if (!expected) rejected++;
        }
        Assert.InRange(rejected, 300, 2700); // both verdicts are well represented
    }

    /// <summary>
    /// Operations on one key with overlapping intervals. Outputs come from running them one after
    /// another in a random order (so many histories are linearizable), and are then sometimes
    /// perturbed, hidden (timed out) or their intervals shuffled (so many are not).
    /// </summary>
    private static List<HistoryOp> RandomHistory(Random rng, int n)
    {
        var state = KvState.Absent;
        var ops = new List<HistoryOp>();
        long time = 0;
        for (int i = 0; i < n; i++)
        {
            var input = rng.Next(5) switch
            {
                0 => Put("v" + i),
                1 => Del(),
                2 => Cas(rng.Next(3), "c" + i),
                _ => Get(),
            };
            KvModel.Step(state, input, null, out var next);
            var output = input.Kind switch
            {
                KvOpKind.Get => Read(state.Value, state.Version),
                KvOpKind.Put => Version(next.Version),
                KvOpKind.Delete => new KvOutput(state.Version != 0, null, 0),
                _ => state.Version == input.ExpectedVersion ? Version(next.Version) : new KvOutput(false, null, state.Version),
            };
            if (rng.Next(6) == 0) output = output with { Version = output.Version + 1 };
            state = next;
            long invoke = time + rng.Next(3);
            long ret = invoke + 1 + rng.Next(6);
            time += 1 + rng.Next(3);
            ops.Add(rng.Next(7) == 0 && input.Kind != KvOpKind.Get
                ? (rng.Next(2) == 0 ? HistoryOp.Unknown(++_id, i, input, invoke) : new HistoryOp(++_id, i, input, invoke, ret, OpStatus.Unknown, output))
                : HistoryOp.Ok(++_id, i, input, invoke, ret, output));
        }
        return ops;
    }

    /// <summary>Linearizable iff some order of the operations respects real time and the model; an unknown write may also be left out.</summary>
    private static bool BruteForce(List<HistoryOp> ops)
    {
        return Search(KvState.Absent, new bool[ops.Count]);

        bool Search(KvState state, bool[] done)
        {
            if (done.All(d => d)) return true;
            for (int i = 0; i < ops.Count; i++)
            {
                if (done[i]) continue;
                // i may go next only if every operation not yet placed returns after i is invoked.
                if (Enumerable.Range(0, ops.Count).Any(j => !done[j] && j != i && ops[j].Return < ops[i].Invoke)) continue;
                if (!KvModel.Step(state, ops[i].Input, ops[i].Output, out var next)) continue;
                done[i] = true;
                bool ok = Search(next, done);
                done[i] = false;
                if (ok) return true;
            }
            // An unknown write with no known return may never take effect: leave it out.
            for (int i = 0; i < ops.Count; i++)
            {
                if (done[i] || ops[i].Status != OpStatus.Unknown || ops[i].Return != long.MaxValue) continue;
                done[i] = true;
                bool ok = Search(state, done);
                done[i] = false;
                if (ok) return true;
            }
            return false;
        }
    }
}
