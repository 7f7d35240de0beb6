using System.Runtime.Intrinsics.X86;

namespace Replication.Engine;

/// <summary>
/// CRC-32C (Castagnoli), the checksum on every wire frame, log entry and snapshot chunk.
/// Uses the SSE4.2 instruction where the CPU has it, a table otherwise; both give the same
/// value (checked by tests against the RFC 3720 vectors). Thread-safe, allocation-free.
/// Written here rather than taken from System.IO.Hashing because pwsh loads module
/// dependencies into its default context, where a second copy of a BCL-adjacent package clashes.
/// </summary>
public static class Crc32C
{
    private static readonly uint[] Table = BuildTable();

    /// <summary>CRC-32C of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Append(0, data);

    /// <summary>Continues a CRC over more data: Append(Compute(a), b) == Compute(a ++ b).</summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        uint c = ~crc;
        if (Sse42.X64.IsSupported)
        {
            ulong c64 = c;
            while (data.Length >= 8)
            {
                c64 = Sse42.X64.Crc32(c64, BitConverter.ToUInt64(data));
                data = data[8..];
            }
            c = (uint)c64;
        }
        if (Sse42.IsSupported)
        {
            foreach (byte b in data) c = Sse42.Crc32(c, b);
            return ~c;
        }
        foreach (byte b in data) c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
        return ~c;
    }

    /// <summary>The portable table-driven path, exposed so tests can compare it with the hardware path.</summary>
    internal static uint ComputePortable(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFF;
        foreach (byte b in data) c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
        return ~c;
    }

    private static uint[] BuildTable()
    {
        const uint poly = 0x82F63B78; // reflected Castagnoli polynomial
        var t = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? (c >> 1) ^ poly : c >> 1;
            t[i] = c;
        }
        return t;
    }
}
