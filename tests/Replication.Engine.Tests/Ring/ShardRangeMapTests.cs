using Replication.Engine.Ring;
using Xunit;

namespace Replication.Engine.Tests.Ring;

public sealed class ShardRangeMapTests
{
    [Fact]
    public void OneShardOwnsTheWholeSpace()
    {
        var map = ShardRangeMap.Even(1);
        var r = Assert.Single(map.Ranges);
        Assert.Equal(new ShardRange(0, 0, ulong.MaxValue), r);
        Assert.Equal((UInt128)ulong.MaxValue + 1, r.Size);
        Assert.Equal(1.0, r.Share);
        Assert.Equal(0, map.ShardForHash(ulong.MaxValue));
    }

    [Fact]
    public void EvenSplitCutsAtMultiplesOfTheShardSize()
    {
        var map = ShardRangeMap.Even(4);
        Assert.Equal(
            [new ShardRange(0, 0, 0x3fffffffffffffff), new ShardRange(1, 0x4000000000000000, 0x7fffffffffffffff),
             new ShardRange(2, 0x8000000000000000, 0xbfffffffffffffff), new ShardRange(3, 0xc000000000000000, ulong.MaxValue)],
            map.Ranges);
        // Three shards: floor(i * 2^64 / 3); sizes differ by at most one hash.
        var three = ShardRangeMap.Even(3).Ranges;
        Assert.Equal(0x5555555555555555UL, three[1].Start);
        Assert.Equal(0xaaaaaaaaaaaaaaaaUL, three[2].Start);
        Assert.True(three.Max(r => r.Size) - three.Min(r => r.Size) <= 1);
    }

    [Fact]
    public void LookupMatchesALinearScan()
    {
        var map = Split(ShardRangeMap.Even(37), splits: 40, seed: 3);
        var rng = new Random(5);
        var probes = new List<ulong> { 0, ulong.MaxValue };
        foreach (var r in map.Ranges) probes.AddRange([r.Start, r.Last, r.Start == 0 ? 0 : r.Start - 1]);
        for (int i = 0; i < 2000; i++) probes.Add((ulong)rng.NextInt64() ^ ((ulong)rng.Next() << 63));
        foreach (ulong h in probes)
            Assert.Equal(map.Ranges.Single(r => r.Contains(h)).Shard, map.ShardForHash(h));
        Assert.Equal(map.ShardForHash(KeyHash.Of("user:42")), map.ShardFor("user:42"));
    }

    [Fact]
    public void SplitGivesTheRightHalfToTheNewShardAndLeavesTheOldMapAlone()
    {
        var map = ShardRangeMap.Even(2);
        var split = map.Split(0, 7);
        Assert.Equal(0, map.Version);
        Assert.Equal(1, split.Version);
        Assert.Equal(2, map.Count);
        Assert.Equal(
            [new ShardRange(0, 0, 0x3fffffffffffffff), new ShardRange(7, 0x4000000000000000, 0x7fffffffffffffff), map.Ranges[1]],
            split.Ranges);
        Assert.Equal(map.RangeOf(0).Start, split.RangeOf(0).Start); // the left half keeps the shard's ring position
        // The top range splits too, without overflow.
        var top = split.Split(1, 8);
        Assert.Equal(new ShardRange(1, 0x8000000000000000, 0xbfffffffffffffff), top.RangeOf(1));
        Assert.Equal(new ShardRange(8, 0xc000000000000000, ulong.MaxValue), top.RangeOf(8));
    }

    [Fact]
    public void SplitRefusesWhatItCannotDo()
    {
        var map = ShardRangeMap.Even(2);
        Assert.Throws<KeyNotFoundException>(() => map.Split(5, 6));
        Assert.Throws<ArgumentException>(() => map.Split(0, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => map.Split(0, -1));
        // Split shard 0 until its range is a single hash.
        var m = map;
        for (int i = 0; i < 63; i++) m = m.Split(0, 100 + i);
        Assert.Equal(new ShardRange(0, 0, 0), m.RangeOf(0));
        Assert.Throws<InvalidOperationException>(() => m.Split(0, 999));
    }

    [Fact]
    public void JsonRoundTrips()
    {
        var map = Split(ShardRangeMap.Even(16), splits: 20, seed: 9);
        string json = map.ToJson();
        var back = ShardRangeMap.FromJson(json);
        Assert.Equal(map.Version, back.Version);
        Assert.Equal(map.Ranges, back.Ranges);
        Assert.Equal(json, back.ToJson());
    }

    [Fact]
    public void JsonFormatOneIsPinned()
    {
        Assert.Equal(
            """{"format":1,"version":1,"ranges":[{"shard":0,"start":"0000000000000000","last":"7fffffffffffffff"},{"shard":1,"start":"8000000000000000","last":"ffffffffffffffff"}]}""",
            ShardRangeMap.Even(1).Split(0, 1).ToJson());
    }

    [Theory]
    [InlineData("""{"format":2,"version":0,"ranges":[{"shard":0,"start":"0000000000000000","last":"ffffffffffffffff"}]}""")] // unknown format
    [InlineData("""{"format":1,"version":0,"ranges":[{"shard":0,"start":"0000000000000001","last":"ffffffffffffffff"}]}""")] // does not start at 0
    [InlineData("""{"format":1,"version":0,"ranges":[{"shard":0,"start":"0000000000000000","last":"fffffffffffffffe"}]}""")] // does not reach the top
    [InlineData("""{"format":1,"version":0,"ranges":[{"shard":0,"start":"0000000000000000","last":"0000000000000010"},{"shard":1,"start":"0000000000000010","last":"ffffffffffffffff"}]}""")] // overlap
    [InlineData("""{"format":1,"version":0,"ranges":[{"shard":0,"start":"0000000000000000","last":"0000000000000010"},{"shard":1,"start":"0000000000000012","last":"ffffffffffffffff"}]}""")] // gap
    [InlineData("""{"format":1,"version":0,"ranges":[{"shard":3,"start":"0000000000000000","last":"0000000000000010"},{"shard":3,"start":"0000000000000011","last":"ffffffffffffffff"}]}""")] // duplicate id
    [InlineData("""{"format":1,"version":0,"ranges":[{"shard":0,"start":"0","last":"ffffffffffffffff"}]}""")] // short hex
    [InlineData("""{"format":1,"version":0,"ranges":[]}""")]
    [InlineData("""{"format":1,"ranges":[]}""")]
    [InlineData("not json")]
    public void MalformedJsonIsRefused(string json) => Assert.Throws<FormatException>(() => ShardRangeMap.FromJson(json));

    [Fact]
    public void RangeTextShowsBothInclusiveBounds() =>
        Assert.Equal("[0x4000000000000000, 0x7fffffffffffffff]", ShardRangeMap.Even(4).RangeOf(1).ToString());

    // Splits random shards (new ids count up from 1000).
    private static ShardRangeMap Split(ShardRangeMap map, int splits, int seed)
    {
        var rng = new Random(seed);
        for (int i = 0; i < splits; i++) map = map.Split(map.Ranges[rng.Next(map.Count)].Shard, 1000 + i);
        return map;
    }
}
