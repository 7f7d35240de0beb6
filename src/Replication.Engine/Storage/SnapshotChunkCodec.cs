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
/// Decoding checks every length against the bytes left before allocating, that every key and value is UTF-8, and
/// rejects trailing bytes; a malformed chunk is <see cref="StorageCorruptException"/>. Stateless, thread-safe.
/// </summary>
public static class SnapshotChunkCodec
{
    public const byte FormatVersion = 1;
    /// <summary>The format of a first chunk that carries the shard's hash range.</summary>
    public const byte RangeFormatVersion = 2;
    /// <summary>The first byte of a snapshot that is an image of the shard's file (ShardSnapshotReader.OpenImage), not rows: the
    /// bytes after it, and every later chunk's, are the image's stream (<see cref="ShardImageReader"/>).</summary>
    public const byte ImageFormatVersion = 3;
    internal const int RowFixedBytes = 4 + 4 + 8 + 8;
    private const int RangeBytes = 16;

    /// <summary>Splits <paramref name="rows"/> into encoded chunks, lazily; an empty shard is one empty chunk. The first
    /// chunk carries <paramref name="range"/> when it is given (the shard took part in a split). A snapshot stream encodes
    /// the rows as SQLite holds them instead (<see cref="ShardSnapshotReader.Chunks"/>), in the same format.</summary>
    public static IEnumerable<byte[]> Encode(IEnumerable<StoredKey> rows, int chunkBytes, (ulong Start, ulong Last)? range = null)
    {
        var writer = new SnapshotChunkWriter(chunkBytes, range);
        foreach (var row in rows)
        {
            byte[] key = Encoding.UTF8.GetBytes(row.Key), value = Encoding.UTF8.GetBytes(row.Value);
            if (writer.Closes(key.Length, value.Length)) yield return writer.Take();
            writer.Add(key, value, row.Version, row.ModifiedIndex);
        }
        if (writer.Rows > 0 || !writer.Any) yield return writer.Take();
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
        var rows = new List<StoredKey>();
        ForEachRow(chunk, (key, value, version, index) => rows.Add(new StoredKey(Encoding.UTF8.GetString(key), Encoding.UTF8.GetString(value), version, index)));
        return rows;
    }

    /// <summary>One row of a chunk as it lies there: key and value as UTF-8 bytes (checked to be valid UTF-8).</summary>
    internal delegate void RowVisitor(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, long version, long modifiedIndex);

    /// <summary>
    /// Hands <paramref name="visit"/> each row of one chunk in order, its key and value as slices of the chunk (nothing is
    /// copied or converted: a snapshot's receiver binds them to SQLite as they are, KvStore.InstallSnapshotRows). Every
    /// length is checked before it is used; a malformed chunk throws before the row it would affect is visited, so the
    /// caller's transaction is the place to undo the rows before it.
    /// </summary>
    /// <exception cref="StorageCorruptException">The chunk is malformed.</exception>
    internal static void ForEachRow(ReadOnlySpan<byte> chunk, RowVisitor visit)
    {
        int header = HeaderBytes(RangeOf(chunk));
        if (chunk.Length < header) throw Malformed("header truncated");
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(chunk[(header - 4)..]);
        if (count > (chunk.Length - header) / RowFixedBytes) throw Malformed($"row count {count} exceeds what {chunk.Length} bytes can hold");
        int pos = header;
        for (int i = 0; i < count; i++)
        {
            var key = ReadText(chunk, ref pos);
            var value = ReadText(chunk, ref pos);
            if (chunk.Length - pos < 16) throw Malformed("row truncated");
            long version = BinaryPrimitives.ReadInt64LittleEndian(chunk[pos..]);
            long index = BinaryPrimitives.ReadInt64LittleEndian(chunk[(pos + 8)..]);
            pos += 16;
            visit(key, value, version, index);
        }
        if (pos != chunk.Length) throw Malformed("trailing bytes");
    }

    internal static int HeaderBytes((ulong, ulong)? range) => range is null ? 5 : 5 + RangeBytes;

    private static ReadOnlySpan<byte> ReadText(ReadOnlySpan<byte> chunk, ref int pos)
    {
        if (chunk.Length - pos < 4) throw Malformed("length truncated");
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(chunk[pos..]);
        if (length > chunk.Length - pos - 4) throw Malformed($"length {length} exceeds the chunk");
        var text = chunk.Slice(pos + 4, (int)length);
        if (!System.Text.Unicode.Utf8.IsValid(text)) throw Malformed("text is not UTF-8");
        pos += 4 + (int)length;
        return text;
    }

    private static StorageCorruptException Malformed(string why) => new($"Snapshot chunk is malformed: {why}.");
}
