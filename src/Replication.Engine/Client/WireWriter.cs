using System.Buffers;
using System.Buffers.Binary;

namespace Replication.Engine.Client;

/// <summary>Growable little-endian writer for client payloads (the mirror of Transport.WireReader). Not thread-safe.</summary>
internal sealed class WireWriter
{
    private readonly ArrayBufferWriter<byte> _buffer = new(256);

    public int Length => _buffer.WrittenCount;
    public ReadOnlyMemory<byte> Written => _buffer.WrittenMemory;
    public byte[] ToArray() => _buffer.WrittenSpan.ToArray();

    public void U8(byte value) { _buffer.GetSpan(1)[0] = value; _buffer.Advance(1); }
    public void Bool(bool value) => U8(value ? (byte)1 : (byte)0);
    public void I32(int value) { BinaryPrimitives.WriteInt32LittleEndian(_buffer.GetSpan(4), value); _buffer.Advance(4); }
    public void U32(uint value) { BinaryPrimitives.WriteUInt32LittleEndian(_buffer.GetSpan(4), value); _buffer.Advance(4); }
    public void I64(long value) { BinaryPrimitives.WriteInt64LittleEndian(_buffer.GetSpan(8), value); _buffer.Advance(8); }
    public void Guid(Guid value) { value.TryWriteBytes(_buffer.GetSpan(16)); _buffer.Advance(16); }

    /// <summary>u32 UTF-8 byte length, then the bytes. A lone surrogate is an error (it has no UTF-8 form).</summary>
    public void String(string value)
    {
        int n = Storage.KvLimits.StrictUtf8.GetByteCount(value);
        U32((uint)n);
        Storage.KvLimits.StrictUtf8.GetBytes(value, _buffer.GetSpan(n));
        _buffer.Advance(n);
    }

    /// <summary>u32 byte length, then the bytes.</summary>
    public void Bytes(ReadOnlySpan<byte> value)
    {
        U32((uint)value.Length);
        value.CopyTo(_buffer.GetSpan(value.Length));
        _buffer.Advance(value.Length);
    }

    public void NullableString(string? value)
    {
        Bool(value is not null);
        if (value is not null) String(value);
    }
}
