using System.Buffers.Binary;

namespace Replication.Engine.Storage;

/// <summary>
/// Builds the chunks of <see cref="SnapshotChunkCodec"/>'s format one row at a time, writing each row's bytes straight into
/// a buffer: a row costs no allocation. A chunk is taken either as a new exact-length array (<see cref="Take"/>: the codec's
/// Encode, backups) or as the buffer itself, rented from the snapshot stream's pool (<see cref="TakeBuffer"/>: a snapshot
/// stream, <see cref="SnapshotChunkBuffer"/>), the next chunk then starting in a new rented buffer. Rows were read as two
/// arrays each, kept in a list and copied into the chunk, which made reading and encoding a 33 MB shard allocate twice its
/// size and the snapshot stream bound by that (ring bench); the exact-length array per chunk was the next cost (a 256 KiB
/// array on the large-object heap per chunk, bench --only snapshot-parts). Not thread-safe: one producer.
/// Usage: <c>if (writer.Closes(key, value)) take a chunk; writer.Add(key, value, ...)</c>; at the end take the last chunk
/// when <c>writer.Rows &gt; 0 || !writer.Any</c>; then Dispose (a pooled writer's last buffer goes back to the pool).
/// </summary>
internal sealed class SnapshotChunkWriter : IDisposable
{
    private readonly int _chunkBytes;
    private readonly bool _pooled;
    private byte[] _buffer;
    private (ulong Start, ulong Last)? _range;
    private int _pos;

    /// <param name="chunkBytes">The size a chunk closes at (a row larger than that gets a chunk of its own).</param>
    /// <param name="range">The shard's hash range, which the first chunk carries (null: a shard never split).</param>
    /// <param name="pooled">Chunks are taken with <see cref="TakeBuffer"/>: the buffers come from the snapshot stream's pool.</param>
    public SnapshotChunkWriter(int chunkBytes, (ulong Start, ulong Last)? range, bool pooled = false)
    {
        _chunkBytes = chunkBytes;
        _range = range;
        _pooled = pooled;
        int size = Math.Clamp(chunkBytes, 64, 1 << 20);
        _buffer = pooled ? SnapshotChunkBuffer.Rent(size) : new byte[size];
        _pos = SnapshotChunkCodec.HeaderBytes(_range);
    }

    /// <summary>Rows added since the last chunk was taken.</summary>
    public int Rows { get; private set; }

    /// <summary>True once a chunk was taken: a snapshot has at least one, an empty shard's being empty.</summary>
    public bool Any { get; private set; }

    /// <summary>Whether a row of this key and value does not fit in the chunk under way (which has rows): take it first.</summary>
    public bool Closes(int keyBytes, int valueBytes) => Rows > 0 && _pos + RowSize(keyBytes, valueBytes) > _chunkBytes;

    private static long RowSize(int keyBytes, int valueBytes) => SnapshotChunkCodec.RowFixedBytes + (long)keyBytes + valueBytes;

    /// <summary>Adds a row (key and value UTF-8) to the chunk under way, which grows for a row larger than a chunk.</summary>
    public void Add(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, long version, long index)
    {
        long rowSize = RowSize(key.Length, value.Length);
        if (_pos + rowSize > _buffer.Length)
        {
            int size = checked((int)(_pos + rowSize));
            if (_pooled)
            {
                var bigger = SnapshotChunkBuffer.Rent(size);
                _buffer.AsSpan(0, _pos).CopyTo(bigger);
                SnapshotChunkBuffer.Return(_buffer);
                _buffer = bigger;
            }
            else Array.Resize(ref _buffer, size);
        }
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
    }

    /// <summary>The chunk of the rows added since the last one (none: an empty chunk) as a new array; the next one starts empty.</summary>
    public byte[] Take()
    {
        int length = Close();
        return _buffer.AsSpan(0, length).ToArray();
    }

    /// <summary>The chunk of the rows added since the last one as the pooled buffer it was written in (a pooled writer only);
    /// the next chunk starts in a new one. The caller owns the buffer (<see cref="SnapshotChunkBuffer"/>).</summary>
    public SnapshotChunkBuffer TakeBuffer()
    {
        if (!_pooled) throw new InvalidOperationException("TakeBuffer needs a pooled writer.");
        int length = Close();
        var chunk = new SnapshotChunkBuffer(_buffer, length);
        _buffer = SnapshotChunkBuffer.Rent(Math.Clamp(_chunkBytes, 64, 1 << 20));
        return chunk;
    }

    /// <summary>Writes the chunk under way's header; returns its length and starts the next one.</summary>
    private int Close()
    {
        int header = SnapshotChunkCodec.HeaderBytes(_range);
        _buffer[0] = _range is null ? SnapshotChunkCodec.FormatVersion : SnapshotChunkCodec.RangeFormatVersion;
        if (_range is { } r)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(_buffer.AsSpan(1), r.Start);
            BinaryPrimitives.WriteUInt64LittleEndian(_buffer.AsSpan(9), r.Last);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(header - 4), (uint)Rows);
        int length = _pos;
        _range = null; // only the first chunk carries it
        _pos = SnapshotChunkCodec.HeaderBytes(_range);
        Rows = 0;
        Any = true;
        return length;
    }

    /// <summary>A pooled writer's buffer under way goes back to the pool; the writer is not used afterwards.</summary>
    public void Dispose()
    {
        if (_pooled && _buffer.Length > 0) SnapshotChunkBuffer.Return(_buffer);
        _buffer = [];
    }
}
