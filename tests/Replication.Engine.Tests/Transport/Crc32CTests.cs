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

    [Fact]
    public void Combine_joins_two_crcs_as_if_their_bytes_were_read_in_one_go()
    {
        var random = new Random(11);
        var data = new byte[5 * 1024 * 1024 + 3];
        random.NextBytes(data);
        foreach (int cut in new[] { 0, 1, 4, 255, 4096, 1_048_576, data.Length - 4, data.Length - 1, data.Length })
        {
            uint whole = Crc32C.Compute(data);
            Assert.Equal(whole, Crc32C.Combine(Crc32C.Compute(data.AsSpan(0, cut)), Crc32C.Compute(data.AsSpan(cut)), data.Length - cut));
        }
        for (int i = 0; i < 200; i++)
        {
            int length = random.Next(1, 70_000), cut = random.Next(length + 1);
            var span = data.AsSpan(random.Next(1000), length);
            Assert.Equal(Crc32C.Compute(span), Crc32C.Combine(Crc32C.Compute(span[..cut]), Crc32C.Compute(span[cut..]), length - cut));
        }
        // A second part past 2^29 bytes, where the length's bits reach past the 32 first squares of x: checked against the
        // CRC read byte by byte (512 MiB of zeros, appended a megabyte at a time).
        long n = (1L << 29) + 12_345;
        uint a = Crc32C.Compute("abc"u8), appended = a, zeros = 0;
        var megabyte = new byte[1 << 20];
        for (long left = n; left > 0; left -= megabyte.Length)
        {
            var part = megabyte.AsSpan(0, (int)Math.Min(left, megabyte.Length));
            appended = Crc32C.Append(appended, part);
            zeros = Crc32C.Append(zeros, part);
        }
        Assert.Equal(appended, Crc32C.Combine(a, zeros, n));
        Assert.Throws<ArgumentOutOfRangeException>(() => Crc32C.Combine(0, 0, -1));
    }
}
