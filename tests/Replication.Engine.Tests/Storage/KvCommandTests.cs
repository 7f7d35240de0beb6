using Replication.Engine.Storage;
using Xunit;

namespace Replication.Engine.Tests.Storage;

public sealed class KvCommandTests
{
    private static readonly KvOp[] Sample =
    [
        new(KvOpType.Put, "a", "1", null),
        new(KvOpType.Put, "users/ünïcödé/😀", "", 0),
        new(KvOpType.Delete, "gone", null, 7),
        new(KvOpType.Delete, "x", null, null),
        new(KvOpType.Put, "big", "v", long.MaxValue),
    ];

    [Fact]
    public void RoundTrips()
    {
        var decoded = KvCommand.Decode(KvCommand.Encode(Sample));
        Assert.Equal(Sample, decoded);
    }

    [Fact]
    public void RoundTripsLimitSizedKeyAndValue()
    {
        var op = new KvOp(KvOpType.Put, new string('k', KvLimits.MaxKeyBytes), new string('v', KvLimits.MaxValueBytes), 1);
        Assert.Equal([op], KvCommand.Decode(KvCommand.Encode([op])));
    }

    [Fact]
    public void FormatVersionOneIsPinned()
    {
        // version, count, type=Put, flags=value|expected, key "a", value "b", expected 3
        byte[] expected = [1, 1, 1, 3, 1, (byte)'a', 1, (byte)'b', 3];
        Assert.Equal(expected, KvCommand.Encode([new KvOp(KvOpType.Put, "a", "b", 3)]));
        // Delete, no flags, key "k"; a 2-byte varint for expected 300
        byte[] del = [1, 1, 2, 2, 1, (byte)'k', 0xAC, 0x02];
        Assert.Equal([new KvOp(KvOpType.Delete, "k", null, 300)], KvCommand.Decode(del));
    }

    [Fact]
    public void EveryTruncationIsRejected()
    {
        byte[] full = KvCommand.Encode(Sample);
        for (int n = 0; n < full.Length; n++)
            Assert.Throws<StorageCorruptException>(() => KvCommand.Decode(full.AsSpan(0, n)));
    }

    public static TheoryData<string, byte[]> Malformed() => new()
    {
        { "unknown format version", [2, 1, 1, 1, 1, (byte)'a', 0] },
        { "zero ops", [1, 0] },
        { "huge op count", [1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 1, 1, 1, (byte)'a', 0] },
        { "op count beyond data", [1, 5, 2, 0, 1, (byte)'a'] },
        { "huge key length", [1, 1, 2, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, (byte)'a'] },
        { "key length over limit", [1, 1, 2, 0, 0x81, 0x08, (byte)'a'] },  // 1025
        { "key length beyond data", [1, 1, 2, 0, 10, (byte)'a'] },
        { "value length over limit", [1, 1, 1, 1, 1, (byte)'a', 0x81, 0x80, 0x40] }, // (1 << 20) + 1
        { "unknown op type", [1, 1, 3, 0, 1, (byte)'a'] },
        { "op type zero", [1, 1, 0, 0, 1, (byte)'a'] },
        { "unknown flag bit", [1, 1, 2, 4, 1, (byte)'a'] },
        { "put without value", [1, 1, 1, 0, 1, (byte)'a'] },
        { "delete with value", [1, 1, 2, 1, 1, (byte)'a', 1, (byte)'b'] },
        { "empty key", [1, 1, 2, 0, 0] },
        { "invalid UTF-8 key", [1, 1, 2, 0, 2, 0xC3, 0x28] },
        { "encoded surrogate in key", [1, 1, 2, 0, 3, 0xED, 0xA0, 0x80] },
        { "varint over 64 bits", [1, 1, 2, 2, 1, (byte)'a', 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02] },
        { "varint over 10 bytes", [1, 1, 2, 2, 1, (byte)'a', 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00] },
        { "expected version over long.MaxValue", [1, 1, 2, 2, 1, (byte)'a', 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01] },
        { "trailing bytes", [1, 1, 2, 0, 1, (byte)'a', 0] },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void MalformedInputIsRejected(string why, byte[] data)
    {
        var ex = Assert.Throws<StorageCorruptException>(() => KvCommand.Decode(data));
        Assert.False(string.IsNullOrEmpty(ex.Message), why);
    }

    [Fact]
    public void RandomBytesAndMutationsNeverThrowAnythingElse()
    {
        var rng = new Random(20240611);
        byte[] valid = KvCommand.Encode(Sample);
        for (int i = 0; i < 20_000; i++)
        {
            byte[] data;
            if (i % 2 == 0)
            {
                data = new byte[rng.Next(0, 40)];
                rng.NextBytes(data);
                if (data.Length > 0 && rng.Next(2) == 0) data[0] = KvCommand.FormatVersion;
            }
            else
            {
                data = (byte[])valid.Clone();
                data[rng.Next(data.Length)] = (byte)rng.Next(256);
            }
            try
            {
                var ops = KvCommand.Decode(data);
                Assert.Equal(ops, KvCommand.Decode(KvCommand.Encode(ops)));
            }
            catch (StorageCorruptException)
            {
            }
        }
    }

    [Fact]
    public void EncodeRejectsInvalidOps()
    {
        Assert.Throws<ArgumentException>(() => KvCommand.Encode([]));
        Assert.Throws<ArgumentException>(() => KvCommand.Encode([new KvOp(KvOpType.Put, "a", null, null)]));
        Assert.Throws<ArgumentException>(() => KvCommand.Encode([new KvOp(KvOpType.Delete, "a", "v", null)]));
        Assert.Throws<ArgumentException>(() => KvCommand.Encode([new KvOp(KvOpType.Delete, "a", null, -1)]));
        Assert.Throws<ArgumentException>(() => KvCommand.Encode([new KvOp((KvOpType)9, "a", null, null)]));
        var ex = Assert.Throws<InvalidKeyException>(() => KvCommand.Encode([new KvOp(KvOpType.Put, "", "v", null)]));
        Assert.Equal(InvalidKeyException.EmptyKey, ex.ErrorId);
    }
}
