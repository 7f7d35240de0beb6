using System.Buffers;

namespace Replication.Engine.Storage;

/// <summary>
/// One encoded snapshot chunk (<see cref="SnapshotChunkCodec"/>) in an array rented from the snapshot stream's own pool: the
/// sender's reader fills it (<see cref="ShardSnapshotReader.ChunkBuffers"/>) and the transport returns it once it has
/// encoded the chunk's frame (PeerSender; the frame is assembled in a buffer of its own, so the chunk's array is not read
/// after that). Each chunk used to be a new exact-length array of 256 KiB, on the large-object heap: about 14 full
/// collections per 33 MB on the sender, more than SQLite's own cost of reading the rows (bench --only snapshot-parts).
/// <para>
/// Ownership: exactly one holder at a time (the reader, then the message that carries it); <see cref="Dispose"/> returns the
/// array to the pool and is idempotent. A buffer that is never returned is collected like any array: losing one costs
/// an allocation, never correctness. Returning one while something still reads it is the bug to avoid: the pool hands the
/// array to the next chunk, whose bytes the late reader then sees; so only the transport returns a chunk it was given, after
/// encoding it, and a chunk that never reached the transport is returned by the stream that read it.
/// </para>
/// Thread-safe (Dispose from any thread, once effective).
/// </summary>
internal sealed class SnapshotChunkBuffer : IDisposable
{
    /// <summary>The snapshot stream's pool: a chunk's array is 256 KiB by default (NodeOptions.SnapshotChunkBytes); a sender
    /// uses at most its window's worth at a time (read and not yet encoded by the lane: NodeHostOptions.SnapshotWindow, 64),
    /// a receiver one per chunk staged in memory until it is stored. At most <see cref="PooledPerSize"/> arrays per size are
    /// kept between transfers, and only arrays up to <see cref="MaxPooledBytes"/>: 16 MiB held at the default chunk size once
    /// a node has sent or received a snapshot. A larger array (a larger chunk setting, or a row larger than a chunk) is
    /// allocated and left to the collector, so a shard of large values cannot make the pool hold hundreds of megabytes.</summary>
    private static readonly ArrayPool<byte> Pool = ArrayPool<byte>.Create(MaxPooledBytes, PooledPerSize);
    internal const int MaxPooledBytes = 1 << 20;
    internal const int PooledPerSize = 64;

    private byte[]? _array;

    internal SnapshotChunkBuffer(byte[] array, int length)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, array.Length);
        _array = array;
        Length = length;
    }

    /// <summary>An array of at least <paramref name="minimumLength"/> bytes from the pool, for <see cref="SnapshotChunkWriter"/>.</summary>
    internal static byte[] Rent(int minimumLength) => Pool.Rent(minimumLength);

    /// <summary>Gives an array rented with <see cref="Rent"/> back (one that never became a chunk).</summary>
    internal static void Return(byte[] array) => Pool.Return(array);

    /// <summary>The chunk's bytes.</summary>
    public int Length { get; }

    /// <summary>The chunk's bytes; valid until <see cref="Dispose"/>.</summary>
    /// <exception cref="ObjectDisposedException">The buffer was returned.</exception>
    public ReadOnlyMemory<byte> Memory => new(Volatile.Read(ref _array) ?? throw new ObjectDisposedException(nameof(SnapshotChunkBuffer)), 0, Length);

    /// <summary>True once the array went back to the pool.</summary>
    public bool Returned => Volatile.Read(ref _array) is null;

    /// <summary>Returns the array to the pool (the first call; later ones do nothing).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _array, null) is { } array) Pool.Return(array);
    }
}
