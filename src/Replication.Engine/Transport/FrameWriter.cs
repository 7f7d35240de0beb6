using System.Buffers;
using System.Buffers.Binary;
using Replication.Engine.Raft;

namespace Replication.Engine.Transport;

/// <summary>
/// Writes frames to a stream (one connection's send side). Each frame is assembled in one
/// pooled buffer, header and payload together, and handed to the stream in a single write, so
/// with TCP_NODELAY a frame leaves in as few segments as its size allows.
/// Not thread-safe: one writer per stream, one write at a time. Does not own the stream.
/// </summary>
public sealed class FrameWriter(Stream stream)
{
    private readonly Stream _stream = stream ?? throw new ArgumentNullException(nameof(stream));

    /// <summary>Writes a Hello frame.</summary>
    public ValueTask WriteHelloAsync(HelloFrame hello, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(hello);
        return WriteAsync(FrameType.Hello, HelloFrame.EncodedSize, hello, static (span, h) => h.Encode(span), cancellationToken);
    }

    /// <summary>
    /// Writes one Raft frame carrying <paramref name="messages"/> (at least one). The caller keeps
    /// the batch within <see cref="FrameCodec.MaxPayloadSize"/>; an oversized batch is an
    /// <see cref="ArgumentException"/> and nothing is written.
    /// </summary>
    public ValueTask WriteRaftAsync(IReadOnlyList<RaftMessage> messages, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        if (messages.Count == 0) throw new ArgumentException("A Raft frame carries at least one message.", nameof(messages));
        int size = RaftMessageCodec.GetBatchSize(messages);
        return WriteAsync(FrameType.Raft, size, messages, static (span, m) => RaftMessageCodec.EncodeBatch(m, span), cancellationToken);
    }

    /// <summary>
    /// <see cref="WriteRaftAsync"/> blocking the calling thread: for a sender with a thread of its own (one per
    /// peer), so a frame costs one send and no thread-pool hop.
    /// </summary>
    public void WriteRaft(IReadOnlyList<RaftMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        if (messages.Count == 0) throw new ArgumentException("A Raft frame carries at least one message.", nameof(messages));
        int size = RaftMessageCodec.GetBatchSize(messages);
        if (size > FrameCodec.MaxPayloadSize)
            throw new ArgumentException($"Payload of {size} bytes exceeds the {FrameCodec.MaxPayloadSize}-byte frame limit.");
        foreach (var m in messages)
            if (RaftMessageCodec.ChunkLength(m) >= GatherChunkBytes)
            {
                WriteGathered(messages, size);
                return;
            }
        int total = FrameCodec.HeaderSize + size;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(total);
        try
        {
            var payload = buffer.AsSpan(FrameCodec.HeaderSize, size);
            RaftMessageCodec.EncodeBatch(messages, payload);
            FrameCodec.WriteHeader(buffer, FrameType.Raft, payload);
            _stream.Write(buffer, 0, total);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>A snapshot chunk of at least this many bytes is written from its own buffer, not copied into the frame's
    /// (<see cref="WriteGathered"/>); below it, the copy costs less than the extra writes.</summary>
    internal const int GatherChunkBytes = 64 * 1024;

    /// <summary>
    /// <see cref="WriteRaft"/> for a batch that carries a large snapshot chunk (<see cref="GatherChunkBytes"/>): the frame's
    /// header and every message but such chunks' bytes are encoded into one small pooled buffer, and the stream is given
    /// that buffer's pieces and the chunks' own buffers in turn, the CRC appended over them in the same order. The bytes on
    /// the wire are exactly <see cref="WriteRaft"/>'s; a 1 MiB image chunk is no longer copied once more on its way to the
    /// socket, which left its sender's lane with the CRC and the send. Blocking, like <see cref="WriteRaft"/>.
    /// </summary>
    private void WriteGathered(IReadOnlyList<RaftMessage> messages, int size)
    {
        long left = 0;
        foreach (var m in messages) if (RaftMessageCodec.ChunkLength(m) >= GatherChunkBytes) left += m.Chunk.Length;
        int encoded = FrameCodec.HeaderSize + size - (int)left;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(encoded);
        var cuts = new List<(int At, ReadOnlyMemory<byte> Chunk)>(); // in the buffer, where each chunk's bytes go
        try
        {
            int pos = FrameCodec.HeaderSize;
            BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(pos), (uint)messages.Count);
            pos += 4;
            foreach (var m in messages)
            {
                if (RaftMessageCodec.ChunkLength(m) < GatherChunkBytes)
                {
                    pos += RaftMessageCodec.Encode(m, buffer.AsSpan(pos));
                    continue;
                }
                int start = pos;
                pos += RaftMessageCodec.EncodeWithoutChunk(m, buffer.AsSpan(pos), out int chunkAt);
                cuts.Add((start + chunkAt, m.Chunk));
            }
            uint crc = 0;
            int from = FrameCodec.HeaderSize;
            foreach (var (at, chunk) in cuts)
            {
                crc = Crc32C.Append(Crc32C.Append(crc, buffer.AsSpan(from, at - from)), chunk.Span);
                from = at;
            }
            crc = Crc32C.Append(crc, buffer.AsSpan(from, pos - from));
            FrameCodec.WriteHeader(buffer, FrameType.Raft, size, crc);
            from = 0;
            foreach (var (at, chunk) in cuts)
            {
                _stream.Write(buffer, from, at - from);
                _stream.Write(chunk.Span);
                from = at;
            }
            _stream.Write(buffer, from, pos - from);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Writes a frame with an already encoded payload.</summary>
    public ValueTask WriteAsync(FrameType type, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default) =>
        WriteAsync(type, payload.Length, payload, static (span, p) => p.Span.CopyTo(span), cancellationToken);

    private async ValueTask WriteAsync<TState>(FrameType type, int payloadSize, TState state, SpanAction<byte, TState> encode, CancellationToken cancellationToken)
    {
        if (payloadSize > FrameCodec.MaxPayloadSize)
            throw new ArgumentException($"Payload of {payloadSize} bytes exceeds the {FrameCodec.MaxPayloadSize}-byte frame limit.");
        int total = FrameCodec.HeaderSize + payloadSize;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(total);
        try
        {
            var payload = buffer.AsSpan(FrameCodec.HeaderSize, payloadSize);
            encode(payload, state);
            FrameCodec.WriteHeader(buffer, type, payload);
            await _stream.WriteAsync(buffer.AsMemory(0, total), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
