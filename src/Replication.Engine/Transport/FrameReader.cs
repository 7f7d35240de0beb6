using System.Buffers;

namespace Replication.Engine.Transport;

/// <summary>
/// Reads validated frames from a stream (one connection's receive side). The payload buffer is
/// rented from <see cref="ArrayPool{T}.Shared"/>, grown only after a header has passed its size
/// check, and reused: a payload returned by <see cref="ReadAsync"/> is valid only until the next
/// call or <see cref="Dispose"/>. Not thread-safe: one reader per stream, one read at a time.
/// Does not own the stream.
/// </summary>
public sealed class FrameReader(Stream stream) : IDisposable
{
    private readonly Stream _stream = stream ?? throw new ArgumentNullException(nameof(stream));
    private readonly byte[] _header = new byte[FrameCodec.HeaderSize];
    private byte[] _payload = [];

    /// <summary>
    /// Reads the next frame. Returns <c>null</c> when the stream ends cleanly between frames.
    /// <paramref name="maxPayloadSize"/> lowers the size limit for this frame (e.g. before the
    /// handshake), and <paramref name="expectedType"/>, when given, is the only type accepted
    /// (<see cref="ProtocolErrorReason.UnexpectedFrame"/> otherwise); both are checked from the
    /// header, before the payload is read or allocated.
    /// </summary>
    /// <exception cref="ProtocolException">Bad header, checksum mismatch, or the stream ended inside a frame.</exception>
    /// <exception cref="IOException">The underlying stream failed.</exception>
    public async ValueTask<(FrameType Type, ReadOnlyMemory<byte> Payload)?> ReadAsync(
        int maxPayloadSize = FrameCodec.MaxPayloadSize, FrameType? expectedType = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_payload is null, this);
        int got = await _stream.ReadAtLeastAsync(_header, FrameCodec.HeaderSize, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        if (got == 0) return null;
        var header = CheckHeader(got, maxPayloadSize, expectedType);
        var payload = PayloadBuffer(header.PayloadLength);
        if (header.PayloadLength > 0)
            CheckPayloadRead(await _stream.ReadAtLeastAsync(payload, header.PayloadLength, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false), header.PayloadLength);
        FrameCodec.VerifyPayload(header, payload.Span);
        return (header.Type, payload);
    }

    /// <summary>
    /// <see cref="ReadAsync"/> blocking the calling thread: for a connection served by a thread of its own
    /// (a peer's Raft frames), so a frame costs no thread-pool hop. The read ends (IOException or
    /// ObjectDisposedException) when another thread closes the stream.
    /// </summary>
    public (FrameType Type, ReadOnlyMemory<byte> Payload)? Read(int maxPayloadSize = FrameCodec.MaxPayloadSize, FrameType? expectedType = null)
    {
        ObjectDisposedException.ThrowIf(_payload is null, this);
        int got = _stream.ReadAtLeast(_header, FrameCodec.HeaderSize, throwOnEndOfStream: false);
        if (got == 0) return null;
        var header = CheckHeader(got, maxPayloadSize, expectedType);
        var payload = PayloadBuffer(header.PayloadLength);
        if (header.PayloadLength > 0)
            CheckPayloadRead(_stream.ReadAtLeast(payload.Span, header.PayloadLength, throwOnEndOfStream: false), header.PayloadLength);
        FrameCodec.VerifyPayload(header, payload.Span);
        return (header.Type, payload);
    }

    private FrameHeader CheckHeader(int got, int maxPayloadSize, FrameType? expectedType)
    {
        if (got < FrameCodec.HeaderSize)
            throw new ProtocolException(ProtocolErrorReason.Truncated, $"Stream ended after {got} of {FrameCodec.HeaderSize} header bytes.");
        var header = FrameCodec.ParseHeader(_header);
        if (expectedType is { } expected && header.Type != expected)
            throw new ProtocolException(ProtocolErrorReason.UnexpectedFrame, $"Got a {header.Type} frame where only {expected} is allowed.");
        if (header.PayloadLength > maxPayloadSize)
            throw new ProtocolException(ProtocolErrorReason.FrameTooLarge, $"{header.Type} frame payload of {header.PayloadLength} bytes exceeds the {maxPayloadSize}-byte limit here.");
        return header;
    }

    private Memory<byte> PayloadBuffer(int length)
    {
        if (_payload.Length < length)
        {
            if (_payload.Length > 0) ArrayPool<byte>.Shared.Return(_payload);
            _payload = [];
            _payload = ArrayPool<byte>.Shared.Rent(length);
        }
        return _payload.AsMemory(0, length);
    }

    private static void CheckPayloadRead(int got, int length)
    {
        if (got < length)
            throw new ProtocolException(ProtocolErrorReason.Truncated, $"Stream ended after {got} of {length} payload bytes.");
    }

    /// <summary>Returns the pooled buffer. The reader cannot be used afterwards.</summary>
    public void Dispose()
    {
        if (_payload is { Length: > 0 }) ArrayPool<byte>.Shared.Return(_payload);
        _payload = null!;
    }
}
