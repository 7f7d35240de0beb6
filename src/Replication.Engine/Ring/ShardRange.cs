using System.Globalization;

namespace Replication.Engine.Ring;

/// <summary>
/// The contiguous range of key hashes one shard owns: every hash h with Start &lt;= h &lt;= Last.
/// The end is inclusive so the range reaching the top of the 64-bit space is representable without
/// a 2^64 that does not fit in a ulong (and without the wrap-around bugs an exclusive end of 0
/// invites): [Start, End) in the design is [Start, Last + 1). Immutable value.
/// </summary>
/// <param name="Shard">The shard id (not negative).</param>
/// <param name="Start">The first hash of the range; also the shard's position on the ring.</param>
/// <param name="Last">The last hash of the range (inclusive); Start &lt;= Last.</param>
public readonly record struct ShardRange(int Shard, ulong Start, ulong Last)
{
    /// <summary>Number of hashes in the range, 1 .. 2^64 (hence UInt128).</summary>
    public UInt128 Size => (UInt128)(Last - Start) + 1;

    /// <summary>Fraction of the whole hash space the range covers, in (0, 1].</summary>
    public double Share => (double)Size / Math.Pow(2, 64);

    /// <summary>True when the range holds <paramref name="hash"/>.</summary>
    public bool Contains(ulong hash) => hash >= Start && hash <= Last;

    /// <summary>True when the range holds two or more hashes, so it can split.</summary>
    public bool CanSplit => Last > Start;

    /// <summary>The last hash of the left half when the range splits at its midpoint: the left half is
    /// [Start, Midpoint] and the right half [Midpoint + 1, Last]; the left half is never the smaller.</summary>
    public ulong Midpoint => Start + (Last - Start) / 2;

    /// <summary>The range as 16-digit hex bounds, both inclusive: "[0x0000000000000000, 0x3fffffffffffffff]".</summary>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"[0x{Start:x16}, 0x{Last:x16}]");
}
