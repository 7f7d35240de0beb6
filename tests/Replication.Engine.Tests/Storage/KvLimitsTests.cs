using Replication.Engine.Storage;
using Xunit;

namespace Replication.Engine.Tests.Storage;

public sealed class KvLimitsTests
{
    private static string Id(Action a) => Assert.Throws<InvalidKeyException>(a).ErrorId;

    [Fact]
    public void EmptyKeyIsRejected() => Assert.Equal(InvalidKeyException.EmptyKey, Id(() => KvLimits.Validate("", "v")));

    [Fact]
    public void KeyLimitCountsUtf8Bytes()
    {
        KvLimits.Validate(new string('a', 1024), null);
        Assert.Equal(InvalidKeyException.KeyTooLong, Id(() => KvLimits.Validate(new string('a', 1025), null)));
        // 342 chars but 1026 bytes: the limit is on bytes, not chars.
        Assert.Equal(InvalidKeyException.KeyTooLong, Id(() => KvLimits.Validate(new string('€', 342), null)));
        KvLimits.Validate(string.Concat(Enumerable.Repeat("😀", 256)), null); // 512 chars, exactly 1024 bytes
        Assert.Equal(InvalidKeyException.KeyTooLong, Id(() => KvLimits.Validate(string.Concat(Enumerable.Repeat("😀", 256)) + "a", null)));
    }

    [Fact]
    public void ValueLimitCountsUtf8Bytes()
    {
        KvLimits.Validate("k", new string('v', KvLimits.MaxValueBytes));
        KvLimits.Validate("k", "");
        Assert.Equal(InvalidKeyException.ValueTooLarge, Id(() => KvLimits.Validate("k", new string('v', KvLimits.MaxValueBytes + 1))));
        Assert.Equal(InvalidKeyException.ValueTooLarge, Id(() => KvLimits.Validate("k", new string('é', KvLimits.MaxValueBytes / 2 + 1))));
    }

    [Fact]
    public void LoneSurrogatesAreRejected()
    {
        Assert.Equal(KvLimits.InvalidEncoding, Id(() => KvLimits.Validate("a\uD800", null)));
        Assert.Equal(KvLimits.InvalidEncoding, Id(() => KvLimits.Validate("a", "\uDC00b")));
        Assert.Equal(InvalidKeyException.EmptyKey, Id(() => KvLimits.Validate("", null)));
    }

    [Fact]
    public void RejectionNamesTheKey()
    {
        var ex = Assert.Throws<InvalidKeyException>(() => KvLimits.Validate("k", new string('v', KvLimits.MaxValueBytes + 1)));
        Assert.Equal("k", ex.Target);
        Assert.Equal(ReplicationErrorKind.InvalidArgument, ex.Kind);
    }
}
