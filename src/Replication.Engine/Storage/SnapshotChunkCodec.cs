using System.Buffers.Binary;
using System.Text;

namespace Replication.Engine.Storage;

/// <summary>
/// Encoding of a shard snapshot as a sequence of self-contained chunks, each at most about
/// <c>chunkBytes</c> (a single row larger than that gets a chunk of its own), so a snapshot of any
/// size streams in bounded memory on both sides. Chunk layout (little-endian):
/// <c>[u8 format = 1][u32 row count]</c> then per row
/// <c>[u32 key bytes][key UTF-8][u32 value bytes][value UTF-8][i64 version][i64 modified index]</c>.
/// Decoding checks every length against the bytes left before allocating and rejects trailing
/// bytes; a malformed chunk is <see cref="StorageCorruptException"/>. Stateless, thread-safe.
/// </summary>
public static class SnapshotChunkCodec
{
    public const byte FormatVersion = 1;
    private const int RowFixedBytes = 4 + 4 + 8 + 8;

    /// <summary>Splits <paramref name="rows"/> into encoded chunks, lazily; an empty shard is one empty chunk.</summary>
    public static IEnumerable<byte[]> Encode(IEnumerable<StoredKey> rows, int chunkBytes) =>
        EncodeUtf8(rows.Select(row => (Encoding.UTF8.GetBytes(row.Key), Encoding.UTF8.GetBytes(row.Value), row.Version, row.ModifiedIndex)), chunkBytes);

    /// <summary><see cref="Encode"/> from rows whose key and value are already UTF-8 (as SQLite stores them:
    /// <see cref="ShardSnapshotReader.Utf8Rows"/>), so a snapshot stream converts no text.</summary>
    public static IEnumerable<byte[]> EncodeUtf8(IEnumerable<(byte[] Key, byte[] Value, long Version, long Index)> rows, int chunkBytes)
    {
        var pending = new List<(byte[] Key, byte[] Value, long Version, long Index)>();
        long size = 5;
        bool any = false;
        foreach (var row in rows)
        {
            any = true;
            long rowSize = RowFixedBytes + row.Key.Length + row.Value.Length;
            if (pending.Count > 0 && size + rowSize > chunkBytes)
            {
                yield return Write(pending, size);
                pending.Clear();
                size = 5;
            }
            pending.Add(row);
            size += rowSize;
        }
        if (pending.Count > 0 || !any) yield return Write(pending, size);
    }

    /// <summary>Decodes one chunk.</summary>
    /// <exception cref="StorageCorruptException">The chunk is malformed.</exception>
    public static IReadOnlyList<StoredKey> Decode(ReadOnlySpan<byte> chunk)
    {
        if (chunk.Length < 5 || chunk[0] != FormatVersion) throw Malformed("bad header");
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(chunk[1..]);
        if (count > (chunk.Length - 5) / RowFixedBytes) throw Malformed($"row count {count} exceeds what {chunk.Length} bytes can hold");
        var rows = new StoredKey[count];
        int pos = 5;
        for (int i = 0; i < count; i++)
        {
            string key = ReadString(chunk, ref pos);
            string value = ReadString(chunk, ref pos);
            if (chunk.Length - pos < 16) throw Malformed("row truncated");
            long version = BinaryPrimitives.ReadInt64LittleEndian(chunk[pos..]);
            long index = BinaryPrimitives.ReadInt64LittleEndian(chunk[(pos + 8)..]);
            pos += 16;
            rows[i] = new StoredKey(key, value, version, index);
        }
        if (pos != chunk.Length) throw Malformed("trailing bytes");
        return rows;
    }

    private static byte[] Write(List<(byte[] Key, byte[] Value, long Version, long Index)> rows, long size)
    {
        var buffer = new byte[size];
        buffer[0] = FormatVersion;
        BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(1), (uint)rows.Count);
        int pos = 5;
        foreach (var (key, value, version, index) in rows)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(pos), (uint)key.Length);
            key.CopyTo(buffer, pos + 4);
            pos += 4 + key.Length;
            BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(pos), (uint)value.Length);
            value.CopyTo(buffer, pos + 4);
            pos += 4 + value.Length;
            BinaryPrimitives.WriteInt64LittleEndian(buffer.AsSpan(pos), version);
            BinaryPrimitives.WriteInt64LittleEndian(buffer.AsSpan(pos + 8), index);
            pos += 16;
        }
        return buffer;
    }

    private static string ReadString(ReadOnlySpan<byte> chunk, ref int pos)
    {
        if (chunk.Length - pos < 4) throw Malformed("length truncated");
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(chunk[pos..]);
        if (length > chunk.Length - pos - 4) throw Malformed($"length {length} exceeds the chunk");
        var text = Encoding.UTF8.GetString(chunk.Slice(pos + 4, (int)length));
        pos += 4 + (int)length;
        return text;
    }

    private static StorageCorruptException Malformed(string why) => new($"Snapshot chunk is malformed: {why}.");
}
