using System.Buffers.Binary;
using System.Text;

namespace Replication.Engine.Storage;

/// <summary>
/// Encoding of a shard snapshot as a sequence of self-contained chunks, each at most about
/// <c>chunkBytes</c> (a single row larger than that gets a chunk of its own), so a snapshot of any
/// size streams in bounded memory on both sides. Chunk layout (little-endian):
/// <c>[u8 format = 1][u32 row count]</c> then per row
/// <c>[u32 key bytes][key UTF-8][u32 value bytes][value UTF-8][i64 version][i64 modified index]</c>.
/// The first chunk of a snapshot of a shard that took part in a split carries the shard's hash range before its rows:
/// <c>[u8 format = 2][u64 range start][u64 range last (inclusive)][u32 row count]</c> then the rows as above. A Raft
/// snapshot is the shard's whole state at its index, and the range is part of it (KvStore's shard_range): without it a
/// replica that caught up by snapshot past a split owned every key of the shard again and applied old-map writes the
/// other replicas refuse. Every other chunk, and every chunk of a shard never split, is format 1, as before.
/// Decoding checks every length against the bytes left before allocating and rejects trailing
/// bytes; a malformed chunk is <see cref="StorageCorruptException"/>. Stateless, thread-safe.
/// </summary>
public static class SnapshotChunkCodec
{
    public const byte FormatVersion = 1;
    /// <summary>The format of a first chunk that carries the shard's hash range.</summary>
    public const byte RangeFormatVersion = 2;
    private const int RowFixedBytes = 4 + 4 + 8 + 8;
    private const int RangeBytes = 16;

    /// <summary>Splits <paramref name="rows"/> into encoded chunks, lazily; an empty shard is one empty chunk. The first
    /// chunk carries <paramref name="range"/> when it is given (the shard took part in a split).</summary>
    public static IEnumerable<byte[]> Encode(IEnumerable<StoredKey> rows, int chunkBytes, (ulong Start, ulong Last)? range = null) =>
        EncodeUtf8(rows.Select(row => (Encoding.UTF8.GetBytes(row.Key), Encoding.UTF8.GetBytes(row.Value), row.Version, row.ModifiedIndex)), chunkBytes, range);

    /// <summary><see cref="Encode"/> from rows whose key and value are already UTF-8 (as SQLite stores them:
    /// <see cref="ShardSnapshotReader.Utf8Rows"/>), so a snapshot stream converts no text.</summary>
    public static IEnumerable<byte[]> EncodeUtf8(IEnumerable<(byte[] Key, byte[] Value, long Version, long Index)> rows, int chunkBytes,
        (ulong Start, ulong Last)? range = null)
    {
        var pending = new List<(byte[] Key, byte[] Value, long Version, long Index)>();
        long size = HeaderBytes(range);
        bool any = false;
        foreach (var row in rows)
        {
            any = true;
            long rowSize = RowFixedBytes + row.Key.Length + row.Value.Length;
            if (pending.Count > 0 && size + rowSize > chunkBytes)
            {
                yield return Write(pending, size, range);
                pending.Clear();
                range = null; // only the first chunk carries it
                size = HeaderBytes(range);
            }
            pending.Add(row);
            size += rowSize;
        }
        if (pending.Count > 0 || !any) yield return Write(pending, size, range);
    }

    /// <summary>The hash range a snapshot's first chunk carries (null: a format-1 chunk, which carries none).</summary>
    /// <exception cref="StorageCorruptException">The chunk is malformed.</exception>
    public static (ulong Start, ulong Last)? RangeOf(ReadOnlySpan<byte> firstChunk)
    {
        if (firstChunk.Length < 5 || firstChunk[0] is not (FormatVersion or RangeFormatVersion)) throw Malformed("bad header");
        if (firstChunk[0] == FormatVersion) return null;
        if (firstChunk.Length < 5 + RangeBytes) throw Malformed("range truncated");
        ulong start = BinaryPrimitives.ReadUInt64LittleEndian(firstChunk[1..]), last = BinaryPrimitives.ReadUInt64LittleEndian(firstChunk[9..]);
        if (start > last) throw Malformed($"range [{start:x16}, {last:x16}] is empty");
        return (start, last);
    }

    /// <summary>Decodes one chunk's rows (a first chunk's range: <see cref="RangeOf"/>).</summary>
    /// <exception cref="StorageCorruptException">The chunk is malformed.</exception>
    public static IReadOnlyList<StoredKey> Decode(ReadOnlySpan<byte> chunk)
    {
        int header = HeaderBytes(RangeOf(chunk));
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(chunk[(header - 4)..]);
        if (count > (chunk.Length - header) / RowFixedBytes) throw Malformed($"row count {count} exceeds what {chunk.Length} bytes can hold");
        var rows = new StoredKey[count];
        int pos = header;
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

    private static int HeaderBytes((ulong, ulong)? range) => range is null ? 5 : 5 + RangeBytes;

    private static byte[] Write(List<(byte[] Key, byte[] Value, long Version, long Index)> rows, long size, (ulong Start, ulong Last)? range)
    {
        var buffer = new byte[size];
        int pos = HeaderBytes(range);
        buffer[0] = range is null ? FormatVersion : RangeFormatVersion;
        if (range is { } r)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(buffer.AsSpan(1), r.Start);
            BinaryPrimitives.WriteUInt64LittleEndian(buffer.AsSpan(9), r.Last);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(pos - 4), (uint)rows.Count);
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
