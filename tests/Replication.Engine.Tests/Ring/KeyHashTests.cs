using System.Text;
using Replication.Engine.Ring;
using Xunit;

namespace Replication.Engine.Tests.Ring;

/// <summary>The key hash is part of the on-disk format (it decides where a key lives): pinned values, and the uniformity the ranges rely on.</summary>
public sealed class KeyHashTests
{
    // Computed independently (Python) from the definition on KeyHash: fmix64(FNV-1a 64(UTF-8 bytes)).
    [Theory]
    [InlineData("", 0xefd01f60ba992926UL)]
    [InlineData("a", 0x82a2a958a9bece5bUL)]
    [InlineData("user:1", 0x4ce53ee4648cef41UL)]
    [InlineData("ünïcödé/😀", 0x5aeef84dc8ca740fUL)]
    public void GoldenValues(string key, ulong expected) => Assert.Equal(expected, KeyHash.Of(key));

    [Fact]
    public void GoldenValueOfALongKeyThatDoesNotFitTheStackBuffer() =>
        Assert.Equal(0xa3376617d9449393UL, KeyHash.Of(new string('k', 1024)));

    [Fact]
    public void GoldenValuesOfTheFinalizer()
    {
        Assert.Equal(0UL, KeyHash.Mix(0));
        Assert.Equal(0xb456bcfc34c2cb2cUL, KeyHash.Mix(1));
    }

    [Fact]
    public void BytesAndStringGiveTheSameHash()
    {
        foreach (string key in new[] { "", "x", "users/ünïcödé/😀", new string('é', 600) })
            Assert.Equal(KeyHash.Of(key), KeyHash.Of(Encoding.UTF8.GetBytes(key)));
    }

    [Fact]
    public void SequentialKeysSpreadEvenlyOverTheHighBits()
    {
        // Ranges are cut on the high bits: 2^16 keys "user:i" into 256 buckets by the top 8 bits.
        // Uniform gives chi-square/df ≈ 1 (sd 0.09); plain FNV-1a gives about 30 here.
        var counts = new int[256];
        const int n = 1 << 16;
        for (int i = 0; i < n; i++) counts[KeyHash.Of("user:" + i) >> 56]++;
        double expected = n / 256.0;
        double chiPerDf = counts.Sum(c => (c - expected) * (c - expected) / expected) / 255;
        Assert.InRange(chiPerDf, 0.6, 1.4);
    }

    [Fact]
    public void EveryInputBitFlipsEveryOutputBitHalfTheTime()
    {
        // Worst bias over 128 input bits x 64 output bits; 2,000 trials give sd 0.011 per pair, so an
        // ideal hash stays near 0.05 at worst. Without the finalizer the worst bias is 0.5.
        var rng = new Random(1);
        const int trials = 2000;
        var flips = new int[128, 64];
        var key = new byte[16];
        for (int t = 0; t < trials; t++)
        {
            rng.NextBytes(key);
            ulong h = KeyHash.Of(key);
            for (int bit = 0; bit < 128; bit++)
            {
                key[bit / 8] ^= (byte)(1 << (bit % 8));
                ulong d = h ^ KeyHash.Of(key);
                key[bit / 8] ^= (byte)(1 << (bit % 8));
                for (int o = 0; o < 64; o++) flips[bit, o] += (int)((d >> o) & 1);
            }
        }
        double worst = 0;
        foreach (int f in flips) worst = Math.Max(worst, Math.Abs(f / (double)trials - 0.5));
        Assert.True(worst < 0.08, $"worst avalanche bias {worst:F3}");
    }
}
