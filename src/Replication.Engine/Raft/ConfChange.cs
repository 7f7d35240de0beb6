using System.Buffers.Binary;

namespace Replication.Engine.Raft;

/// <summary>
/// One membership change, carried as the data of an <see cref="EntryType.ConfChange"/> log entry.
/// Encoding (persisted in the log, so fixed): <c>[u8 format = 1][u8 type][i32 node id, little-endian]</c>,
/// exactly <see cref="EncodedSize"/> bytes. Decoding is bounded: any other length, format, type or a
/// zero node id is refused. Immutable.
/// </summary>
public readonly record struct ConfChange(ConfChangeType Type, int NodeId)
{
    /// <summary>Format byte of the current encoding; bump (and keep decoding the old one) to change it.</summary>
    public const byte FormatVersion = 1;
    public const int EncodedSize = 6;

    public byte[] Encode()
    {
        var b = new byte[EncodedSize];
        b[0] = FormatVersion;
        b[1] = (byte)Type;
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(2), NodeId);
        return b;
    }

    /// <summary>Decodes <paramref name="data"/>; false when it is not a well-formed change.</summary>
    public static bool TryDecode(ReadOnlySpan<byte> data, out ConfChange change)
    {
        change = default;
        if (data.Length != EncodedSize || data[0] != FormatVersion) return false;
        byte type = data[1];
        if (type is < (byte)ConfChangeType.AddVoter or > (byte)ConfChangeType.PromoteLearner) return false;
        int node = BinaryPrimitives.ReadInt32LittleEndian(data[2..]);
        if (node == 0) return false;
        change = new ConfChange((ConfChangeType)type, node);
        return true;
    }

    /// <exception cref="FormatException"><paramref name="data"/> is not a well-formed change.</exception>
    public static ConfChange Decode(ReadOnlySpan<byte> data) =>
        TryDecode(data, out var change) ? change : throw new FormatException($"Not a ConfChange ({data.Length} bytes).");

    public override string ToString() => $"{Type}({NodeId})";
}
