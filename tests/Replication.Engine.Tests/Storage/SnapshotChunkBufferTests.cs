using Replication.Engine.Storage;
using Xunit;

namespace Replication.Engine.Tests.Storage;

/// <summary>
/// The snapshot stream's pooled chunk buffers (SnapshotChunkBuffer, ShardSnapshotReader.ChunkBuffers): the same bytes as
/// the codec's arrays, a buffer handed out never written to again by the reader, and a returned buffer unusable.
/// </summary>
public sealed class SnapshotChunkBufferTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("chunkbuf-").FullName;
    private readonly KvStore _kv;

    public SnapshotChunkBufferTests() => _kv = new KvStore(Path.Combine(_dir, "state.db"));

    public void Dispose()
    {
        _kv.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private static StoredKey[] Rows(int count) => Enumerable.Range(0, count)
        .Select(i => new StoredKey($"k{i:D5}", new string((char)('a' + i % 26), 200 + i % 300), i + 1, i + 10)).ToArray();

    [Fact]
    public void Buffers_held_until_the_end_keep_their_bytes_while_later_chunks_are_read()
    {
        // A stream holds up to its window of chunks read and not yet sent: the reader must never write into a buffer it
        // handed out (if it reused one, the chunks held would change under the transport).
        var rows = Rows(400);
        _kv.InstallSnapshot(3, 50, 2, (10UL, 20UL), SnapshotChunkCodec.Encode(rows, 4096, (10UL, 20UL)));
        using var reader = _kv.OpenSnapshot(3);
        var expected = SnapshotChunkCodec.Encode(reader.Rows(), 4096, reader.Range).ToList();
        var held = reader.ChunkBuffers(4096).ToList();
        try
        {
            Assert.True(expected.Count > 10, "enough chunks to reuse buffers if the reader did");
            Assert.Equal(expected.Count, held.Count);
            for (int i = 0; i < held.Count; i++) Assert.Equal(expected[i], held[i].Memory.ToArray());
            Assert.Equal(held.Count, held.Select(b => b.Memory).Distinct().Count());
            Assert.Equal(rows, held.SelectMany(b => SnapshotChunkCodec.Decode(b.Memory.Span)).ToArray());
        }
        finally
        {
            foreach (var b in held) b.Dispose();
        }
    }

    [Fact]
    public void Buffers_returned_as_soon_as_read_give_the_same_chunks_as_arrays()
    {
        // The stream returns each buffer once the lane has encoded it; the pool then hands it to a later chunk.
        var rows = Rows(300);
        _kv.InstallSnapshot(4, 50, 2, null, SnapshotChunkCodec.Encode(rows, 2048));
        using var reader = _kv.OpenSnapshot(4);
        var expected = SnapshotChunkCodec.Encode(reader.Rows(), 2048).ToList();
        var got = new List<byte[]>();
        foreach (var b in reader.ChunkBuffers(2048))
            using (b)
                got.Add(b.Memory.ToArray());
        Assert.Equal(expected, got);
        using var empty = _kv.OpenSnapshot(5);
        Assert.Equal(SnapshotChunkCodec.Encode([], 2048).ToList(), empty.ChunkBuffers(2048).Select(b => { using (b) return b.Memory.ToArray(); }).ToList());
    }

    [Fact]
    public void A_returned_buffer_cannot_be_read_and_returning_it_twice_returns_it_once()
    {
        _kv.InstallSnapshot(4, 50, 2, null, SnapshotChunkCodec.Encode(Rows(10), 1024));
        using var reader = _kv.OpenSnapshot(4);
        var first = reader.ChunkBuffers(1024).First();
        Assert.False(first.Returned);
        first.Dispose();
        Assert.True(first.Returned);
        Assert.Throws<ObjectDisposedException>(() => first.Memory);
        first.Dispose(); // idempotent: the array is not given to the pool twice (two later chunks would share it)
        var a = SnapshotChunkBuffer.Rent(1024);
        var b = SnapshotChunkBuffer.Rent(1024);
        Assert.NotSame(a, b);
        SnapshotChunkBuffer.Return(a);
        SnapshotChunkBuffer.Return(b);
    }
}
