using Replication.Engine.Verification;
using Xunit;

namespace Replication.Engine.Tests.Verification;

/// <summary>
/// Hand-written histories for the engine's checker (Verification/LinearizabilityChecker.cs, the simulator's algorithm):
/// accepted when linearizable, rejected when not, bounded always, and an undecided search is never a pass.
/// </summary>
public sealed class EngineLinearizabilityCheckerTests
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
    public void HistoryIsCheckedFromTheGivenInitialState()
    {
        // The simulator's forced recovery checks what follows it from the survivor's state: x at version 3, y absent.
        var initial = new Dictionary<string, KvState> { ["x"] = new("s", 3) };
        var h = new[]
        {
            Ok(1, Get(), 1, 2, Read("s", 3)),
            Ok(1, Put("t"), 3, 4, Version(4)),
            Ok(1, Cas(0, "u", key: "y"), 5, 6, Version(1)),
        };
        Assert.Equal(CheckOutcome.Linearizable, LinearizabilityChecker.Check(h, initial: initial).Outcome);
        // From the empty start the same history is not linearizable (x was absent), nor from another version.
        Assert.Equal(CheckOutcome.NotLinearizable, LinearizabilityChecker.Check(h).Outcome);
        Assert.Equal(CheckOutcome.NotLinearizable,
            LinearizabilityChecker.Check(h, initial: new Dictionary<string, KvState> { ["x"] = new("s", 2) }).Outcome);
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
    public void SearchEffortIsBoundedAndReportsUndecided()
    {
        // Many concurrent timed-out CAS ops plus a read no ordering can explain: the search space
        // is exponential, so a small budget must stop with Undecided instead of hanging.
        var h = new List<HistoryOp> { Ok(1, Put("a"), 1, 2, Version(1)) };
        for (int i = 0; i < 40; i++) h.Add(HistoryOp.Unknown(++_id, 10 + i, Cas(1 + i % 3, "v" + i), 3 + i));
        h.Add(Ok(2, Get(), 100, 101, Read("never", 99)));
        var r = LinearizabilityChecker.Check(h, maxSteps: 10_000);
        Assert.Equal(CheckOutcome.Undecided, r.Outcome);
        Assert.True(r.Steps <= 10_001, $"took {r.Steps} steps");
    }

    [Fact]
    public void CheckAllCountsEveryViolatedAndUndecidedKeyAndNeverPassesAnUndecidedOne()
    {
        var h = new List<HistoryOp>
        {
            Ok(1, Put("a", "good"), 1, 2, Version(1)),
            Ok(1, Get("good"), 3, 4, Read("a", 1)),
            Ok(1, Put("a", "bad1"), 1, 2, Version(1)),
            Ok(1, Get("bad1"), 3, 4, Read(null, 0)),
            Ok(1, Put("a", "bad2"), 1, 2, Version(1)),
            Ok(1, Get("bad2"), 3, 4, Read("b", 1)),
            Ok(1, Put("a", "hard"), 1, 2, Version(1)),
        };
        for (int i = 0; i < 40; i++) h.Add(HistoryOp.Unknown(++_id, 10 + i, Cas(1 + i % 3, "v" + i, "hard"), 3 + i));
        h.Add(Ok(2, Get("hard"), 100, 101, Read("never", 99)));
        var r = LinearizabilityChecker.CheckAll(h, maxStepsPerKey: 10_000, maxSteps: 1_000_000);
        Assert.Equal(CheckOutcome.NotLinearizable, r.Outcome);
        Assert.Equal(new[] { "bad1", "bad2" }, r.ViolatedKeys);
        Assert.Equal(new[] { "hard" }, r.UndecidedKeys);
        Assert.Equal(4, r.KeysChecked);

        var onlyHard = LinearizabilityChecker.CheckAll(h.Where(o => o.Input.Key is "hard" or "good"), maxStepsPerKey: 10_000, maxSteps: 1_000_000);
        Assert.Equal(CheckOutcome.Undecided, onlyHard.Outcome); // not Linearizable: an undecided key is not a pass
    }

    [Fact]
    public void ALongLinearizableHistoryWithUnknownWritesIsDecidedQuickly()
    {
        // 4 clients, 2,000 operations on one key, every 50th write of unknown outcome: the shape the fault drill records.
        var h = new List<HistoryOp>();
        var state = KvState.Absent;
        long t = 0;
        for (int i = 0; i < 2000; i++)
        {
            int client = i % 4;
            if (i % 50 == 7)
            {
                h.Add(HistoryOp.Unknown(++_id, client, Put("u" + i), ++t)); // never took effect
                continue;
            }
            if (i % 3 == 0)
            {
                h.Add(Ok(client, Get(), ++t, ++t, Read(state.Value, state.Version)));
                continue;
            }
            state = new KvState("v" + i, state.Version + 1);
            h.Add(Ok(client, Put("v" + i), ++t, ++t, Version(state.Version)));
        }
        var r = LinearizabilityChecker.CheckAll(h, maxStepsPerKey: 2_000_000, maxSteps: 10_000_000);
        Assert.Equal(CheckOutcome.Linearizable, r.Outcome);
    }

    [Fact]
    public void AStaleReadIsFoundInALongHistoryWithAFewWritesOfUnknownOutcome()
    {
        // The fault drill's mutant shape: a read that returns an overwritten value, with writes of unknown outcome pending.
        var h = new List<HistoryOp>();
        var state = KvState.Absent;
        var versionOf = new Dictionary<string, long>();
        long t = 0;
        for (int i = 0; i < 1000; i++)
        {
            if (i % 250 == 11)
            {
                h.Add(HistoryOp.Unknown(++_id, 3, Put("u" + i), ++t));
                continue;
            }
            state = new KvState("v" + i, state.Version + 1);
            versionOf[state.Value!] = state.Version;
            h.Add(Ok(i % 3, Put("v" + i), ++t, ++t, Version(state.Version)));
        }
        h.Add(Ok(1, Get(), ++t, ++t, Read("v500", versionOf["v500"]))); // a real state of the key, long overwritten
        var r = LinearizabilityChecker.CheckAll(h, maxStepsPerKey: 2_000_000, maxSteps: 10_000_000);
        Assert.Equal(CheckOutcome.NotLinearizable, r.Outcome);
    }
}
