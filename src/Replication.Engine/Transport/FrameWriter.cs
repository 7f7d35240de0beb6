using System.Buffers;
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
