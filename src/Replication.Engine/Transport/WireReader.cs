using System.Buffers.Binary;

namespace Replication.Engine.Transport;

/// <summary>
/// Forward-only reader over a received payload. Every read is bounds-checked and reports a
/// short payload as <see cref="ProtocolErrorReason.MalformedPayload"/>, so decoders never see an
/// <see cref="ArgumentOutOfRangeException"/> or <see cref="IndexOutOfRangeException"/>.
/// </summary>
internal ref struct WireReader(ReadOnlySpan<byte> source)
{
    private ReadOnlySpan<byte> _rest = source;

    /// <summary>Bytes not yet read.</summary>
    public readonly int Remaining => _rest.Length;

    public byte ReadByte() => Take(1)[0];
    public int ReadInt32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));
    public uint ReadUInt32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));
    public long ReadInt64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));
    public ReadOnlySpan<byte> ReadBytes(int count) => Take(count);
    public Guid ReadGuid() => new(Take(16));

    /// <summary>A u8 that must be 0 or 1.</summary>
    public bool ReadBool()
    {
        byte b = ReadByte();
        return b <= 1 ? b == 1 : throw Malformed($"Boolean byte {b} is neither 0 nor 1.");
    }

    /// <summary>A u32 byte length then that many bytes of strict UTF-8 (the length is checked against what remains before anything is allocated).</summary>
    public string ReadString(string what)
    {
        uint length = ReadUInt32();
        if (length > (uint)_rest.Length) throw Malformed($"{what} of {length} bytes cannot fit in the {_rest.Length} bytes left.");
        try { return Storage.KvLimits.StrictUtf8.GetString(Take((int)length)); }
        catch (System.Text.DecoderFallbackException) { throw Malformed($"{what} is not valid UTF-8."); }
    }

    /// <summary>A u32 byte length then that many bytes, copied out (the length is checked against what remains first).</summary>
    public byte[] ReadByteString(string what)
    {
        uint length = ReadUInt32();
        if (length > (uint)_rest.Length) throw Malformed($"{what} of {length} bytes cannot fit in the {_rest.Length} bytes left.");
        return Take((int)length).ToArray();
    }

    /// <summary>
    /// Reads a u32 count of items that each take at least <paramref name="minItemSize"/> bytes,
    /// and rejects it unless that many items can fit in what remains. This is the check that
    /// keeps a hostile count from causing a large allocation.
    /// </summary>
    public int ReadCount(int minItemSize, string what)
    {
        uint count = ReadUInt32();
        if (count > (uint)(_rest.Length / minItemSize))
            throw Malformed($"{what} count {count} cannot fit in the {_rest.Length} bytes left.");
        return (int)count;
    }

    /// <summary>Rejects trailing bytes: a payload must be consumed exactly.</summary>
    public readonly void EnsureEnd(string what)
    {
        if (_rest.Length != 0)
            throw Malformed($"{_rest.Length} unexpected bytes after the {what}.");
    }

    public static ProtocolException Malformed(string message) => new(ProtocolErrorReason.MalformedPayload, message);

    private ReadOnlySpan<byte> Take(int count)
    {
        if ((uint)count > (uint)_rest.Length)
            throw Malformed($"Needed {count} bytes, only {_rest.Length} left.");
        var taken = _rest[..count];
        _rest = _rest[count..];
        return taken;
    }
}
