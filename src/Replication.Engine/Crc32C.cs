using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace Replication.Engine;

/// <summary>
/// CRC-32C (Castagnoli), the checksum on every wire frame, log entry and snapshot chunk.
/// Uses the SSE4.2 instruction where the CPU has it, a table otherwise; both give the same
/// value (checked by tests against the RFC 3720 vectors). Thread-safe, allocation-free.
/// Written here rather than taken from System.IO.Hashing because pwsh loads module
/// dependencies into its default context, where a second copy of a BCL-adjacent package clashes.
/// <para>
/// The hardware path runs three streams at once over a long buffer (the instruction's latency is three cycles and its
/// throughput one per cycle, so one stream used a third of it) and joins them with the operator that appends a block of
/// zeros to a CRC (Mark Adler's crc32c.c, zlib's crc32_combine): a snapshot chunk of 256 KiB is checksummed four times
/// between the sender's reader and the receiver's staging (chunk and frame, on each side), at about 1.9 GB/s with one
/// stream (bench --only snapshot-parts).
/// </para>
/// </summary>
public static class Crc32C
{
    private const uint Polynomial = 0x82F63B78; // reflected Castagnoli polynomial
    private static readonly uint[] Table = BuildTable();
    /// <summary>x^(2^k) modulo the polynomial for k = 0..66 (reflected: bit 31 is x^0), the squares <see cref="PowerOfXModP"/>
    /// multiplies together: enough for any length a long holds, in bytes (k = 3 + the length's bits), without assuming, as
    /// zlib's 32-entry table does, that the powers repeat after 32 squarings.
    /// Declared before the shift tables, which are built from it (static fields initialize in textual order).</summary>
    private static readonly uint[] XToTwoToThe = BuildPowersOfX();

    /// <summary>Bytes per stream of the three-stream loop, long and short blocks, and the tables that shift a CRC past
    /// that many zero bytes (one per byte of the CRC, 4 x 256).</summary>
    private const int LongBlock = 8192, ShortBlock = 256;
    private static readonly uint[] ShiftLong = BuildShift(LongBlock), ShiftShort = BuildShift(ShortBlock);

    /// <summary>CRC-32C of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Append(0, data);

    /// <summary>Continues a CRC over more data: Append(Compute(a), b) == Compute(a ++ b).</summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        if (!Sse42.X64.IsSupported) return AppendPortable(crc, data);
        ulong c0 = ~crc;
        ref byte start = ref MemoryMarshal.GetReference(data);
        nint at = 0, length = data.Length;
        c0 = Streams(c0, ref start, ref at, length, LongBlock, ShiftLong);
        c0 = Streams(c0, ref start, ref at, length, ShortBlock, ShiftShort);
        for (; length - at >= 8; at += 8) c0 = Sse42.X64.Crc32(c0, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref start, at)));
        uint c = (uint)c0;
        for (; at < length; at++) c = Sse42.Crc32(c, Unsafe.Add(ref start, at));
        return ~c;
    }

    /// <summary>While three blocks of <paramref name="block"/> bytes are left after <paramref name="at"/>: their CRCs computed
    /// side by side (the second and third from a zero register) and joined onto <paramref name="c0"/> (shifting it past a
    /// block, then XOR); <paramref name="at"/> moves past them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Streams(ulong c0, ref byte start, ref nint at, nint length, int block, uint[] shift)
    {
        while (length - at >= 3 * block)
        {
            ref byte next = ref Unsafe.Add(ref start, at);
            ulong c1 = 0, c2 = 0;
            for (int i = 0; i < block; i += 8)
            {
                c0 = Sse42.X64.Crc32(c0, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref next, i)));
                c1 = Sse42.X64.Crc32(c1, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref next, i + block)));
                c2 = Sse42.X64.Crc32(c2, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref next, i + 2 * block)));
            }
            c0 = Shift(shift, (uint)c0) ^ c1;
            c0 = Shift(shift, (uint)c0) ^ c2;
            at += 3 * block;
        }
        return c0;
    }

    private static uint Shift(uint[] table, uint crc) =>
        table[crc & 0xFF] ^ table[256 + ((crc >> 8) & 0xFF)] ^ table[512 + ((crc >> 16) & 0xFF)] ^ table[768 + (crc >> 24)];

    private static uint AppendPortable(uint crc, ReadOnlySpan<byte> data)
    {
        uint c = ~crc;
        foreach (byte b in data) c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
        return ~c;
    }

    /// <summary>
    /// The CRC of two byte sequences joined, from the CRC of each and the second's length:
    /// Combine(Compute(a), Compute(b), b.Length) == Compute(a ++ b), without reading a byte of either (zlib's
    /// crc32_combine: the first CRC is shifted past <paramref name="secondLength"/> zero bytes by multiplying it by
    /// x^(8 * length) modulo the polynomial, then the second is XORed in). About 60 multiplications of 32-bit polynomials for
    /// a length in the megabytes, so a stream whose parts already have their CRCs (a shard image's, ShardImageReader) gets
    /// the stream's CRC without a second pass over its bytes.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="secondLength"/> is negative.</exception>
    public static uint Combine(uint first, uint second, long secondLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(secondLength);
        return MultiplyModP(PowerOfXModP(secondLength, 3), first) ^ second;
    }

    private static uint[] BuildPowersOfX()
    {
        var table = new uint[67];
        uint p = 1u << 30; // x^1
        table[0] = p;
        for (int k = 1; k < table.Length; k++) table[k] = p = MultiplyModP(p, p);
        return table;
    }

    /// <summary>a(x) * b(x) modulo the polynomial, both reflected (bit 31 is x^0).</summary>
    private static uint MultiplyModP(uint a, uint b)
    {
        uint m = 1u << 31, product = 0;
        while (true)
        {
            if ((a & m) != 0)
            {
                product ^= b;
                if ((a & (m - 1)) == 0) return product;
            }
            m >>= 1;
            b = (b & 1) != 0 ? (b >> 1) ^ Polynomial : b >> 1;
        }
    }

    /// <summary>x^(n * 2^k) modulo the polynomial: with k = 3, the operator that appends n zero bytes.</summary>
    private static uint PowerOfXModP(long n, int k)
    {
        uint p = 1u << 31; // x^0
        while (n != 0)
        {
            if ((n & 1) != 0) p = MultiplyModP(XToTwoToThe[k], p);
            n >>= 1;
            k++;
        }
        return p;
    }

    /// <summary>The portable table-driven path, exposed so tests can compare it with the hardware path.</summary>
    internal static uint ComputePortable(ReadOnlySpan<byte> data) => AppendPortable(0, data);

    private static uint[] BuildTable()
    {
        var t = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? (c >> 1) ^ Polynomial : c >> 1;
            t[i] = c;
        }
        return t;
    }

    /// <summary>The table that shifts a CRC register past <paramref name="bytes"/> zero bytes a byte of the register at a time
    /// (Adler's crc32c_zeros): entry k * 256 + n is n's byte k times x^(8 * bytes), the same operator <see cref="Combine"/>
    /// applies to a whole CRC.</summary>
    private static uint[] BuildShift(int bytes)
    {
        uint op = PowerOfXModP(bytes, 3);
        var table = new uint[4 * 256];
        for (uint n = 0; n < 256; n++)
        {
            table[n] = MultiplyModP(op, n);
            table[256 + n] = MultiplyModP(op, n << 8);
            table[512 + n] = MultiplyModP(op, n << 16);
            table[768 + n] = MultiplyModP(op, n << 24);
        }
        return table;
    }
}
