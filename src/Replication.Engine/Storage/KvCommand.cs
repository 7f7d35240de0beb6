using System.Buffers;
using System.Text;

namespace Replication.Engine.Storage;

/// <summary>
/// The encoding of a key-value command: the Data of a Normal Raft entry, a batch of
/// <see cref="KvOp"/>s applied in order. Persisted in every replica's log, so the format is
/// versioned and only ever extended.
///
/// Format version 1 (varint = unsigned LEB128, at most 10 bytes, minimal form not required):
/// <code>
///   byte    format version (1)
///   varint  op count (&gt;= 1)
///   per op: byte   type (KvOpType)
///           byte   flags: bit 0 = has value, bit 1 = has expected version, bit 2 = has version; other bits 0
///           varint key length, then the key in UTF-8
///           [varint value length, then the value in UTF-8]   if bit 0
///           [varint expected version]                         if bit 1
///           [varint version]                                  if bit 2 (Restore only, and always for it)
/// </code>
/// An empty Data is not a command but a leader's no-op entry; <see cref="Encode"/> never
/// produces it. <see cref="Decode"/> runs on data from disk and from peers, so it bounds every
/// count and length by the bytes that remain and by <see cref="KvLimits"/> before allocating,
/// and throws <see cref="StorageCorruptException"/> for anything malformed. Thread-safe.
/// </summary>
public static class KvCommand
{
    /// <summary>The format version written by <see cref="Encode"/>.</summary>
    public const byte FormatVersion = 1;

    private const byte HasValue = 1;
    private const byte HasExpected = 2;
    private const byte HasVersion = 4;

    /// <summary>
    /// Encodes a non-empty batch of ops. Validates each op (limits via
    /// <see cref="KvLimits.Validate"/>: <see cref="InvalidKeyException"/>; a put without a value,
    /// a delete with one, a negative expected version or an unknown type: <see cref="ArgumentException"/>).
    /// </summary>
    public static byte[] Encode(IReadOnlyList<KvOp> ops)
    {
        ArgumentNullException.ThrowIfNull(ops);
        if (ops.Count == 0) throw new ArgumentException("A command carries at least one op.", nameof(ops));

        var buf = new ArrayBufferWriter<byte>(16 + ops.Count * 32);
        buf.Write([FormatVersion]);
        WriteVarint(buf, (ulong)ops.Count);
        foreach (var op in ops)
        {
            ArgumentNullException.ThrowIfNull(op, nameof(ops));
            if (!Enum.IsDefined(op.Type)) throw new ArgumentException($"Unknown op type {(byte)op.Type}.", nameof(ops));
            if (op.Type is KvOpType.Put or KvOpType.Restore && op.Value is null) throw new ArgumentException($"{op.Type} of '{op.Key}' has no value.", nameof(ops));
            if ((op.Type == KvOpType.Restore) != (op.Version is not null) || op.Version <= 0)
                throw new ArgumentException($"{op.Type} of '{op.Key}': a restore carries a positive version, and only a restore does.", nameof(ops));
            if (op.Type == KvOpType.Delete && op.Value is not null) throw new ArgumentException($"Delete of '{op.Key}' carries a value.", nameof(ops));
            if (op.ExpectedVersion < 0) throw new ArgumentException($"Expected version of '{op.Key}' is negative.", nameof(ops));
            KvLimits.Validate(op.Key, op.Value);

            byte flags = (byte)((op.Value is null ? 0 : HasValue) | (op.ExpectedVersion is null ? 0 : HasExpected) | (op.Version is null ? 0 : HasVersion));
            buf.Write([(byte)op.Type, flags]);
            WriteString(buf, op.Key);
            if (op.Value is not null) WriteString(buf, op.Value);
            if (op.ExpectedVersion is { } ev) WriteVarint(buf, (ulong)ev);
            if (op.Version is { } version) WriteVarint(buf, (ulong)version);
        }
        return buf.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Whether applying the Normal entry <paramref name="data"/> may change what a read of <paramref name="key"/> returns: true
    /// for a command with an op on the key, for a shard command (a split changes which shard owns keys), and for data that
    /// does not decode (when unsure, it may); false for the no-op and for commands on other keys only.
    /// </summary>
    public static bool MayChange(ReadOnlySpan<byte> data, string key)
    {
        if (data.Length == 0) return false;
        if (ShardCommand.IsShardCommand(data)) return true;
        try
        {
            foreach (var op in Decode(data))
                if (string.Equals(op.Key, key, StringComparison.Ordinal)) return true;
            return false;
        }
        catch (StorageCorruptException)
        {
            return true;
        }
    }

    /// <summary>Decodes what <see cref="Encode"/> produced. Never allocates more than the input justifies.</summary>
    /// <exception cref="StorageCorruptException">The data is not a well-formed command of a known format version.</exception>
    public static IReadOnlyList<KvOp> Decode(ReadOnlySpan<byte> data)
    {
        if (data.Length == 0) throw Malformed("it is empty (an empty entry is a no-op, not a command)");
        if (data[0] != FormatVersion) throw Malformed($"format version {data[0]} is unknown (expected {FormatVersion})");
        int pos = 1;

        ulong count = ReadVarint(data, ref pos);
        // The smallest op is 3 bytes (type, flags, key length); a count the data cannot hold is corrupt.
        if (count == 0 || count > (ulong)(data.Length - pos) / 3)
            throw Malformed($"op count {count} does not fit in {data.Length - pos} remaining bytes");

        var ops = new KvOp[(int)count];
        for (int i = 0; i < ops.Length; i++)
        {
            if (data.Length - pos < 2) throw Malformed($"op {i} is truncated");
            byte type = data[pos++];
            byte flags = data[pos++];
            if (type is not ((byte)KvOpType.Put or (byte)KvOpType.Delete or (byte)KvOpType.Restore)) throw Malformed($"op {i} has unknown type {type}");
            if ((flags & ~(HasValue | HasExpected | HasVersion)) != 0) throw Malformed($"op {i} has unknown flags 0x{flags:X2}");
            bool hasValue = (flags & HasValue) != 0;
            if (hasValue != (type != (byte)KvOpType.Delete)) throw Malformed($"op {i}: a put or restore must carry a value and a delete must not");
            if (((flags & HasVersion) != 0) != (type == (byte)KvOpType.Restore)) throw Malformed($"op {i}: a restore must carry a version and nothing else may");

            string key = ReadString(data, ref pos, KvLimits.MaxKeyBytes, i, "key");
            if (key.Length == 0) throw Malformed($"op {i} has an empty key");
            string? value = hasValue ? ReadString(data, ref pos, KvLimits.MaxValueBytes, i, "value") : null;
            long? expected = null;
            if ((flags & HasExpected) != 0)
            {
                ulong ev = ReadVarint(data, ref pos);
                if (ev > long.MaxValue) throw Malformed($"op {i} has expected version {ev} out of range");
                expected = (long)ev;
            }
            long? version = null;
            if ((flags & HasVersion) != 0)
            {
                ulong v = ReadVarint(data, ref pos);
                if (v is 0 or > long.MaxValue) throw Malformed($"op {i} has version {v} out of range");
                version = (long)v;
            }
            ops[i] = new KvOp((KvOpType)type, key, value, expected, version);
        }
        if (pos != data.Length) throw Malformed($"{data.Length - pos} bytes follow the last op");
        return ops;
    }

    private static void WriteString(ArrayBufferWriter<byte> buf, string s)
    {
        int n = KvLimits.StrictUtf8.GetByteCount(s);
        WriteVarint(buf, (ulong)n);
        KvLimits.StrictUtf8.GetBytes(s, buf.GetSpan(n));
        buf.Advance(n);
    }

    private static void WriteVarint(ArrayBufferWriter<byte> buf, ulong v)
    {
        Span<byte> tmp = stackalloc byte[10];
        int n = 0;
        while (v >= 0x80)
        {
            tmp[n++] = (byte)(v | 0x80);
            v >>= 7;
        }
        tmp[n++] = (byte)v;
        buf.Write(tmp[..n]);
    }

    private static ulong ReadVarint(ReadOnlySpan<byte> data, ref int pos)
    {
        ulong v = 0;
        for (int shift = 0; shift < 70; shift += 7)
        {
            if (pos >= data.Length) throw Malformed("a varint is truncated");
            byte b = data[pos++];
            if (shift == 63 && b > 1) throw Malformed("a varint overflows 64 bits");
            v |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return v;
        }
        throw Malformed("a varint is longer than 10 bytes");
    }

    private static string ReadString(ReadOnlySpan<byte> data, ref int pos, int maxBytes, int op, string what)
    {
        ulong len = ReadVarint(data, ref pos);
        if (len > (ulong)maxBytes) throw Malformed($"op {op}: {what} length {len} exceeds the limit of {maxBytes} bytes");
        if (len > (ulong)(data.Length - pos)) throw Malformed($"op {op}: {what} length {len} exceeds the {data.Length - pos} remaining bytes");
        string s;
        try
        {
            s = KvLimits.StrictUtf8.GetString(data.Slice(pos, (int)len));
        }
        catch (DecoderFallbackException)
        {
            throw Malformed($"op {op}: {what} is not valid UTF-8");
        }
        pos += (int)len;
        return s;
    }

    private static StorageCorruptException Malformed(string why) => new($"Malformed key-value command: {why}.");
}
