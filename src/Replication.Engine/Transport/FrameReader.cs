using System.Buffers;

namespace Replication.Engine.Transport;

/// <summary>
/// Reads validated frames from a stream (one connection's receive side). Bytes are received into a buffer (rented from
/// <see cref="ArrayPool{T}.Shared"/>), as many as the stream has ready, and frames are cut from it: a frame that arrived
/// whole costs one receive, and frames that arrived together cost one between them. (Read as a header and then a payload,
/// every frame cost two receive system calls, each a few microseconds of kernel time on the paravirtualized bench machine,
/// on every peer and client connection; issue 11, "frames batched into few system calls".) The buffer starts at
/// <see cref="InitialBufferSize"/> and grows, up to <see cref="MaxBufferSize"/>, to hold a frame that did not fit: a client
/// connection's small requests keep a small buffer, a peer's batches of entries get a large one. (Every reader starting at
/// 64 KiB made connecting 64 clients take 110-190 ms against 55-125 ms before: fresh memory is costly to touch on this
/// VM.) A payload longer than the largest buffer gets a buffer of its own, also rented, grown only after its header has
/// passed the size check. A payload returned by <see cref="ReadAsync"/> or <see cref="Read"/> is valid only until the
/// next call or <see cref="Dispose"/>. Not thread-safe: one reader per stream, one read at a time. Does not own the stream.
/// <para>
/// Reading ahead: the reader may hold bytes of the frames after the one it returned. Whoever reads the stream after a
/// frame must therefore read it through the same reader; a short-lived reader (a dialer's handshake, whose stream is read
/// by a new reader afterwards) passes <c>readAhead: false</c> and then takes no byte past the frame it returns.
/// </para>
/// </summary>
public sealed class FrameReader : IDisposable
{
    /// <summary>The receive buffer's size at first: a few client requests or Raft acknowledgments.</summary>
    public const int InitialBufferSize = 4 * 1024;

    /// <summary>The largest the receive buffer grows: a few batches of Raft entries (64 clients' writes are about 20 KiB).</summary>
    public const int MaxBufferSize = 64 * 1024;

    private readonly Stream _stream;
    private readonly bool _readAhead;
    /// <summary>Received bytes not yet returned are <c>_buffer[_start.._end)</c>.</summary>
    private byte[]? _buffer;
    private int _start;
    private int _end;
    /// <summary>The buffer of the last payload longer than <see cref="_buffer"/> (empty until one came).</summary>
    private byte[] _large = [];

    /// <param name="stream">The connection's receive side.</param>
    /// <param name="readAhead">Whether a receive may take more bytes than the frame being read needs (see the type).</param>
    public FrameReader(Stream stream, bool readAhead = true)
    {
        _stream = stream ?? throw new ArgumentNullException(nameof(stream));
        _readAhead = readAhead;
        _buffer = ArrayPool<byte>.Shared.Rent(InitialBufferSize);
    }

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
        ObjectDisposedException.ThrowIf(_buffer is null, this);
        Compact();
        while (Buffered < FrameCodec.HeaderSize)
            if (!Received(await _stream.ReadAsync(ReceiveSpace(FrameCodec.HeaderSize), cancellationToken).ConfigureAwait(false)))
                return EndOfStream(FrameCodec.HeaderSize);
        var header = TakeHeader(maxPayloadSize, expectedType);
        Memory<byte> payload;
        if (header.PayloadLength <= Grow(header.PayloadLength))
        {
            while (Buffered < header.PayloadLength)
                if (!Received(await _stream.ReadAsync(ReceiveSpace(header.PayloadLength), cancellationToken).ConfigureAwait(false)))
                    throw Truncated(Buffered, header.PayloadLength);
            payload = TakeBuffered(header.PayloadLength);
        }
        else
        {
            payload = StartLarge(header.PayloadLength, out int have);
            if (have < payload.Length)
                CheckPayloadRead(have + await _stream.ReadAtLeastAsync(payload[have..], payload.Length - have, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false), payload.Length);
        }
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
        ObjectDisposedException.ThrowIf(_buffer is null, this);
        Compact();
        while (Buffered < FrameCodec.HeaderSize)
            if (!Received(_stream.Read(ReceiveSpace(FrameCodec.HeaderSize).Span)))
                return EndOfStream(FrameCodec.HeaderSize);
        var header = TakeHeader(maxPayloadSize, expectedType);
        Memory<byte> payload;
        if (header.PayloadLength <= Grow(header.PayloadLength))
        {
            while (Buffered < header.PayloadLength)
                if (!Received(_stream.Read(ReceiveSpace(header.PayloadLength).Span)))
                    throw Truncated(Buffered, header.PayloadLength);
            payload = TakeBuffered(header.PayloadLength);
        }
        else
        {
            payload = StartLarge(header.PayloadLength, out int have);
            if (have < payload.Length)
                CheckPayloadRead(have + _stream.ReadAtLeast(payload.Span[have..], payload.Length - have, throwOnEndOfStream: false), payload.Length);
        }
        FrameCodec.VerifyPayload(header, payload.Span);
        return (header.Type, payload);
    }

    private int Buffered => _end - _start;

    /// <summary>
    /// Grows the receive buffer to hold a payload of <paramref name="length"/> bytes whose header was just taken (the unread
    /// bytes move along), if it does not and <see cref="MaxBufferSize"/> allows; returns the buffer's length after. Only
    /// within a call, before its payload is cut (the previous call's payload is no longer valid).
    /// </summary>
    private int Grow(int length)
    {
        if (length <= _buffer!.Length || length > MaxBufferSize) return _buffer.Length;
        var grown = ArrayPool<byte>.Shared.Rent(Math.Min(MaxBufferSize, (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)length)));
        _buffer.AsSpan(_start, Buffered).CopyTo(grown);
        _end = Buffered;
        _start = 0;
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = grown;
        return _buffer.Length;
    }

    /// <summary>Moves the unread bytes to the buffer's start: when nothing is unread (free), or when <paramref name="force"/>d
    /// (an item that fits the buffer but not behind its start). Only within a call, when the payload the previous call
    /// returned is no longer valid.</summary>
    private void Compact(bool force = false)
    {
        if (_start == _end) _start = _end = 0;
        else if (force && _start > 0)
        {
            Buffer.BlockCopy(_buffer!, _start, _buffer!, 0, Buffered);
            _end -= _start;
            _start = 0;
        }
    }

    /// <summary>Where the next receive may write, for an item of <paramref name="needed"/> bytes (a header, or a payload no
    /// longer than the buffer) from <see cref="_start"/> that is not whole yet: up to the buffer's end when reading ahead, else
    /// only the bytes the item still lacks. The unread bytes move to the buffer's start first if the item would not fit
    /// behind them (the previous call's payload is no longer valid by then).</summary>
    private Memory<byte> ReceiveSpace(int needed)
    {
        if (_start + needed > _buffer!.Length) Compact(force: true);
        return _readAhead ? _buffer.AsMemory(_end) : _buffer.AsMemory(_end, _start + needed - _end);
    }

    /// <summary>Counts a receive's bytes in; false when the stream ended (0 bytes).</summary>
    private bool Received(int count)
    {
        _end += count;
        return count > 0;
    }

    /// <summary>The stream ended while a header was awaited: cleanly between frames (null), or inside one.</summary>
    private (FrameType Type, ReadOnlyMemory<byte> Payload)? EndOfStream(int needed) =>
        Buffered == 0 ? null : throw new ProtocolException(ProtocolErrorReason.Truncated, $"Stream ended after {Buffered} of {needed} header bytes.");

    private FrameHeader TakeHeader(int maxPayloadSize, FrameType? expectedType)
    {
        var header = FrameCodec.ParseHeader(_buffer.AsSpan(_start, FrameCodec.HeaderSize));
        if (expectedType is { } expected && header.Type != expected)
            throw new ProtocolException(ProtocolErrorReason.UnexpectedFrame, $"Got a {header.Type} frame where only {expected} is allowed.");
        if (header.PayloadLength > maxPayloadSize)
            throw new ProtocolException(ProtocolErrorReason.FrameTooLarge, $"{header.Type} frame payload of {header.PayloadLength} bytes exceeds the {maxPayloadSize}-byte limit here.");
        _start += FrameCodec.HeaderSize;
        return header;
    }

    private Memory<byte> TakeBuffered(int length)
    {
        var payload = _buffer.AsMemory(_start, length);
        _start += length;
        return payload;
    }

    /// <summary>A payload longer than the receive buffer: its own buffer, holding the bytes received already (<paramref name="have"/>).</summary>
    private Memory<byte> StartLarge(int length, out int have)
    {
        if (_large.Length < length)
        {
            if (_large.Length > 0) ArrayPool<byte>.Shared.Return(_large);
            _large = [];
            _large = ArrayPool<byte>.Shared.Rent(length);
        }
        have = Buffered;
        _buffer.AsSpan(_start, have).CopyTo(_large);
        _start = _end = 0;
        return _large.AsMemory(0, length);
    }

    private static ProtocolException Truncated(int got, int length) =>
        new(ProtocolErrorReason.Truncated, $"Stream ended after {got} of {length} payload bytes.");

    private static void CheckPayloadRead(int got, int length)
    {
        if (got < length) throw Truncated(got, length);
    }

    /// <summary>Returns the pooled buffers. The reader cannot be used afterwards.</summary>
    public void Dispose()
    {
        if (_buffer is null) return;
        ArrayPool<byte>.Shared.Return(_buffer);
        if (_large.Length > 0) ArrayPool<byte>.Shared.Return(_large);
        _buffer = null;
        _large = [];
    }
}
