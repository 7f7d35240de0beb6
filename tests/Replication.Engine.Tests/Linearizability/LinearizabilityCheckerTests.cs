using Replication.Simulation.Linearizability;
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
        Assert.Equal(CheckOutcome.Unknown, r.Outcome);
        Assert.True(r.Steps <= 10_001, $"took {r.Steps} steps");
    }
}
