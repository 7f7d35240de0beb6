using System.Buffers.Binary;

namespace Replication.Engine.Storage;

/// <summary>
/// Builds the chunks of <see cref="SnapshotChunkCodec"/>'s format one row at a time, writing each row's bytes straight into
/// a buffer it keeps for the whole snapshot: a row costs no allocation, only a chunk does (one array of its exact size).
/// Rows were read as two arrays each, kept in a list and copied into the chunk, which made reading and encoding a 33 MB
/// shard allocate twice its size and the snapshot stream bound by that (ring bench). Not thread-safe: one producer.
/// </summary>
internal sealed class SnapshotChunkWriter
{
    private readonly int _chunkBytes;
    private byte[] _buffer;
    private (ulong Start, ulong Last)? _range;
    private int _pos;

    /// <param name="chunkBytes">The size a chunk closes at (a row larger than that gets a chunk of its own).</param>
    /// <param name="range">The shard's hash range, which the first chunk carries (null: a shard never split).</param>
    public SnapshotChunkWriter(int chunkBytes, (ulong Start, ulong Last)? range)
    {
        _chunkBytes = chunkBytes;
        _range = range;
        _buffer = new byte[Math.Clamp(chunkBytes, 64, 1 << 20)];
        _pos = SnapshotChunkCodec.HeaderBytes(_range);
    }

    /// <summary>Rows added since the last chunk was taken.</summary>
    public int Rows { get; private set; }

    /// <summary>True once a chunk was taken: a snapshot has at least one, an empty shard's being empty.</summary>
    public bool Any { get; private set; }

    /// <summary>Adds a row (key and value UTF-8); returns the chunk of the rows before it when this one does not fit in it
    /// (null otherwise).</summary>
    public byte[]? Add(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, long version, long index)
    {
        long rowSize = SnapshotChunkCodec.RowFixedBytes + (long)key.Length + value.Length;
        byte[]? done = Rows > 0 && _pos + rowSize > _chunkBytes ? Take() : null;
        if (_pos + rowSize > _buffer.Length) Array.Resize(ref _buffer, checked((int)(_pos + rowSize)));
        var span = _buffer.AsSpan(_pos);
        BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)key.Length);
        key.CopyTo(span[4..]);
        span = span[(4 + key.Length)..];
        BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)value.Length);
        value.CopyTo(span[4..]);
        span = span[(4 + value.Length)..];
        BinaryPrimitives.WriteInt64LittleEndian(span, version);
        BinaryPrimitives.WriteInt64LittleEndian(span[8..], index);
        _pos += (int)rowSize;
        Rows++;
        return done;
    }

    /// <summary>The chunk of the rows added since the last one (none: an empty chunk); the next one starts empty.</summary>
    public byte[] Take()
    {
        int header = SnapshotChunkCodec.HeaderBytes(_range);
        _buffer[0] = _range is null ? SnapshotChunkCodec.FormatVersion : SnapshotChunkCodec.RangeFormatVersion;
        if (_range is { } r)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(_buffer.AsSpan(1), r.Start);
            BinaryPrimitives.WriteUInt64LittleEndian(_buffer.AsSpan(9), r.Last);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(header - 4), (uint)Rows);
        var chunk = _buffer.AsSpan(0, _pos).ToArray();
        _range = null; // only the first chunk carries it
        _pos = SnapshotChunkCodec.HeaderBytes(_range);
        Rows = 0;
        Any = true;
        return chunk;
    }
}
