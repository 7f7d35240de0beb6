using Xunit;

namespace Replication.Engine.Tests.Transport;

/// <summary>CRC-32C: the RFC 3720 vectors, and the hardware path (three streams over long buffers) against the portable one.</summary>
public sealed class Crc32CTests
{
    [Fact]
    public void Rfc3720_vectors()
    {
        Assert.Equal(0xE3069283u, Crc32C.Compute("123456789"u8));
        Assert.Equal(0x8A9136AAu, Crc32C.Compute(new byte[32]));
        Assert.Equal(0x62A8AB43u, Crc32C.Compute(Enumerable.Repeat((byte)0xFF, 32).ToArray()));
        Assert.Equal(0x46DD794Eu, Crc32C.Compute(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray()));
    }

    [Fact]
    public void Every_length_and_offset_agrees_with_the_portable_path_and_appends()
    {
        var random = new Random(7);
        var data = new byte[3 * 8192 * 3 + 3 * 256 + 77];
        random.NextBytes(data);
        int[] lengths = [0, 1, 7, 8, 9, 255, 256, 767, 768, 769, 3 * 256 * 2 + 5, 24_575, 24_576, 24_577, 3 * 8192 * 2 + 3 * 256 + 13, data.Length - 3];
        foreach (int length in lengths)
            foreach (int offset in new[] { 0, 1, 3 })
            {
                var span = data.AsSpan(offset, length);
                uint expected = Crc32C.ComputePortable(span);
                Assert.Equal(expected, Crc32C.Compute(span));
                int cut = random.Next(length + 1);
                Assert.Equal(expected, Crc32C.Append(Crc32C.Compute(span[..cut]), span[cut..]));
            }
    }
}
