using Replication.Engine.Transport;
using Xunit;

namespace Replication.Engine.Tests.Transport;

/// <summary>
/// FrameReader's receive buffer: frames cut from whatever the stream hands over (several at once, or a byte at a time),
/// payloads longer than the buffer, frames that straddle the buffer's end, the stream ending inside a frame, how many
/// receives a frame costs, and a reader that must not read ahead. Every case runs through both the blocking and the
/// asynchronous read.
/// </summary>
public sealed class FrameReaderTests
{
    /// <summary>A stream over fixed bytes that hands out at most <paramref name="chunk"/> bytes per read and counts its
    /// reads, as a socket hands out what has arrived.</summary>
    private sealed class ChunkedStream(byte[] bytes, int chunk) : Stream
    {
        private int _position;
        public int Reads { get; private set; }
        public int Position32 => _position;
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
        public override int Read(Span<byte> buffer)
        {
            Reads++;
            int n = Math.Min(Math.Min(chunk, buffer.Length), bytes.Length - _position);
            bytes.AsSpan(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private static byte[] Payload(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static byte[] Frames(params byte[][] payloads) =>
        payloads.SelectMany(p => FrameCodec.Encode(FrameType.ClientRequest, p)).ToArray();

    /// <summary>One frame, by the blocking or the asynchronous read (the stream completes at once: no thread waits).</summary>
    private static (FrameType Type, ReadOnlyMemory<byte> Payload)? Next(FrameReader reader, bool blocking) =>
        blocking ? reader.Read() : reader.ReadAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>Reads frames until the clean end, copying each payload (it is valid only until the next read).</summary>
    private static List<byte[]> ReadAll(FrameReader reader, bool blocking)
    {
        var payloads = new List<byte[]>();
        while (true)
        {
            var frame = Next(reader, blocking);
            if (frame is not { } f) return payloads;
            Assert.Equal(FrameType.ClientRequest, f.Type);
            payloads.Add(f.Payload.ToArray());
        }
    }

    public static TheoryData<bool, int> Modes()
    {
        var data = new TheoryData<bool, int>();
        foreach (bool blocking in new[] { true, false })
            foreach (int chunk in new[] { 1, 7, 4096, int.MaxValue })
                data.Add(blocking, chunk);
        return data;
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void Frames_of_every_size_come_out_whole_and_in_order_however_the_bytes_arrive(bool blocking, int chunk)
    {
        // Small frames, ones that straddle the receive buffer's end at its first size and at its largest, ones exactly
        // those sizes (the buffer grows), empty ones, and payloads longer than the largest buffer (read into a buffer of
        // their own) with frames around them.
        const int first = FrameReader.InitialBufferSize, largest = FrameReader.MaxBufferSize;
        int[] lengths = [3, 0, 200, first - 500, 1000, first, 0, first + 1, 7, largest - 500, 1000, largest, 0, largest + 1, 5, 3 * largest + 17, 12, first - 3];
        var payloads = lengths.Select((n, i) => Payload(n, i)).ToArray();
        var stream = new ChunkedStream(Frames(payloads), chunk);
        using var reader = new FrameReader(stream);
        var read = ReadAll(reader, blocking);
        Assert.Equal(payloads.Length, read.Count);
        for (int i = 0; i < payloads.Length; i++) Assert.Equal(payloads[i], read[i]);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Frames_that_arrived_together_cost_one_receive_between_them(bool blocking)
    {
        // 30 frames of 100 bytes (within the buffer's first size) arrive at once: read as header then payload they cost 60
        // receives; buffered, one receive takes them all (and one more finds the end of the stream).
        var payloads = Enumerable.Range(0, 30).Select(i => Payload(100, i)).ToArray();
        Assert.True(Frames(payloads).Length <= FrameReader.InitialBufferSize);
        var stream = new ChunkedStream(Frames(payloads), int.MaxValue);
        using var reader = new FrameReader(stream);
        Assert.Equal(30, ReadAll(reader, blocking).Count);
        Assert.Equal(2, stream.Reads);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_reader_that_must_not_read_ahead_takes_no_byte_past_its_frame(bool blocking)
    {
        var first = FrameCodec.Encode(FrameType.ClientRequest, Payload(50, 1));
        var bytes = first.Concat(FrameCodec.Encode(FrameType.ClientRequest, Payload(60, 2))).ToArray();
        var stream = new ChunkedStream(bytes, int.MaxValue);
        using (var reader = new FrameReader(stream, readAhead: false))
        {
            var frame = Next(reader, blocking);
            Assert.Equal(Payload(50, 1), frame!.Value.Payload.ToArray());
        }
        Assert.Equal(first.Length, stream.Position32);
        // The next reader of the stream (a connection's, after a dialer's handshake) finds the second frame whole.
        using var next = new FrameReader(stream);
        Assert.Equal([Payload(60, 2)], ReadAll(next, blocking));
    }

    public static TheoryData<bool, int> Cuts()
    {
        var data = new TheoryData<bool, int>();
        foreach (bool blocking in new[] { true, false })
            foreach (int cut in new[] { 1, FrameCodec.HeaderSize - 1, FrameCodec.HeaderSize, FrameCodec.HeaderSize + 1, FrameCodec.HeaderSize + 99 })
                data.Add(blocking, cut);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cuts))]
    public void A_stream_that_ends_inside_a_frame_is_truncated_after_the_whole_frames_before_it(bool blocking, int cut)
    {
        var whole = FrameCodec.Encode(FrameType.ClientRequest, Payload(30, 1));
        var cutShort = FrameCodec.Encode(FrameType.ClientRequest, Payload(100, 2))[..cut];
        using var reader = new FrameReader(new ChunkedStream(whole.Concat(cutShort).ToArray(), 3));
        var first = Next(reader, blocking);
        Assert.Equal(Payload(30, 1), first!.Value.Payload.ToArray());
        var e = Assert.Throws<ProtocolException>(() => Next(reader, blocking));
        Assert.Equal(ProtocolErrorReason.Truncated, e.Reason);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_long_payload_cut_short_is_truncated(bool blocking)
    {
        var frame = FrameCodec.Encode(FrameType.ClientRequest, Payload(2 * FrameReader.MaxBufferSize, 3));
        using var reader = new FrameReader(new ChunkedStream(frame[..(FrameReader.MaxBufferSize + 100)], 4096));
        var e = Assert.Throws<ProtocolException>(() => Next(reader, blocking));
        Assert.Equal(ProtocolErrorReason.Truncated, e.Reason);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_corrupted_frame_after_good_ones_is_refused_without_losing_them(bool blocking)
    {
        var good = Frames(Payload(10, 1), Payload(20, 2));
        var bad = FrameCodec.Encode(FrameType.ClientRequest, Payload(30, 3));
        bad[^1] ^= 0xFF; // the payload no longer matches its checksum
        using var reader = new FrameReader(new ChunkedStream(good.Concat(bad).ToArray(), int.MaxValue));
        var first = Next(reader, blocking);
        Assert.Equal(Payload(10, 1), first!.Value.Payload.ToArray());
        var second = Next(reader, blocking);
        Assert.Equal(Payload(20, 2), second!.Value.Payload.ToArray());
        var e = Assert.Throws<ProtocolException>(() => Next(reader, blocking));
        Assert.Equal(ProtocolErrorReason.ChecksumMismatch, e.Reason);
    }

    [Fact]
    public void A_frame_over_the_callers_limit_is_refused_from_its_header_before_its_payload_is_read()
    {
        var frame = FrameCodec.Encode(FrameType.ClientRequest, Payload(5000, 1));
        var stream = new ChunkedStream(frame, FrameCodec.HeaderSize);
        using var reader = new FrameReader(stream, readAhead: false);
        var e = Assert.Throws<ProtocolException>(() => reader.Read(maxPayloadSize: 100));
        Assert.Equal(ProtocolErrorReason.FrameTooLarge, e.Reason);
        Assert.Equal(FrameCodec.HeaderSize, stream.Position32);
    }

    [Fact]
    public void A_disposed_reader_refuses_to_read()
    {
        var reader = new FrameReader(new MemoryStream(Frames(Payload(3, 1))));
        reader.Dispose();
        reader.Dispose(); // twice is harmless
        Assert.Throws<ObjectDisposedException>(() => reader.Read());
    }
}
