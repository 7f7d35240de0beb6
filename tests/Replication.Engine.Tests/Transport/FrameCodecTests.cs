using System.Buffers.Binary;
using Replication.Engine.Raft;
using Replication.Engine.Transport;
using Xunit;

namespace Replication.Engine.Tests.Transport;

/// <summary>The frame layer: header layout, Hello, and every way a frame can be malformed.</summary>
public sealed class FrameCodecTests
{
    private static (FrameType Type, byte[] Payload)? ReadOne(byte[] bytes, int maxPayloadSize = FrameCodec.MaxPayloadSize, FrameType? expectedType = null)
    {
        // MemoryStream completes synchronously, so this runs entirely on the calling thread.
        using var reader = new FrameReader(new MemoryStream(bytes));
        var frame = reader.ReadAsync(maxPayloadSize, expectedType).AsTask().GetAwaiter().GetResult();
        return frame is { } f ? (f.Type, f.Payload.ToArray()) : null;
    }

    private static ProtocolErrorReason Rejects(byte[] bytes, int maxPayloadSize = FrameCodec.MaxPayloadSize, FrameType? expectedType = null) =>
        Assert.Throws<ProtocolException>(() => ReadOne(bytes, maxPayloadSize, expectedType)).Reason;

    [Fact]
    public void Header_layout_is_length_version_type_crc()
    {
        byte[] payload = [1, 2, 3];
        var frame = FrameCodec.Encode(FrameType.Raft, payload);
        Assert.Equal(FrameCodec.HeaderSize + 3, frame.Length);
        Assert.Equal(3u, BinaryPrimitives.ReadUInt32LittleEndian(frame));
        Assert.Equal(2, frame[4]); // protocol version 2: authenticated handshake, client frames
        Assert.Equal((byte)FrameType.Raft, frame[5]);
        Assert.Equal(Crc32C.Compute(payload), BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(6)));
        Assert.Equal(payload, frame[FrameCodec.HeaderSize..]);
    }

    [Fact]
    public void Frame_type_values_are_pinned()
    {
        Assert.Equal(1, (byte)FrameType.Hello);
        Assert.Equal(2, (byte)FrameType.Raft);
        Assert.Equal(3, (byte)FrameType.Challenge);
        Assert.Equal(4, (byte)FrameType.Proof);
        Assert.Equal(5, (byte)FrameType.ClientRequest);
        Assert.Equal(6, (byte)FrameType.ClientResponse);
        Assert.Equal(6, Enum.GetValues<FrameType>().Length);
    }

    [Fact]
    public async Task Hello_round_trips_through_writer_and_reader()
    {
        var hello = new HelloFrame(17, WireSamples.ClusterA);
        var stream = new MemoryStream();
        await new FrameWriter(stream).WriteHelloAsync(hello);
        stream.Position = 0;
        using var reader = new FrameReader(stream);
        var frame = await reader.ReadAsync();
        Assert.NotNull(frame);
        Assert.Equal(FrameType.Hello, frame.Value.Type);
        Assert.Equal(hello, HelloFrame.Decode(frame.Value.Payload.Span));
        Assert.Null(await reader.ReadAsync()); // clean end between frames
    }

    [Fact]
    public void Hello_payload_layout_is_pinned()
    {
        var nonce = new UInt128(0x1122334455667788, 0x99AABBCCDDEEFF00);
        var payload = new HelloFrame(FrameCodec.ProtocolVersion, 0x01020304, WireSamples.ClusterA, nonce).Encode();
        Assert.Equal(37, HelloFrame.EncodedSize);
        Assert.Equal(HelloFrame.EncodedSize, payload.Length);
        Assert.Equal(2, payload[0]);
        Assert.Equal(0x01020304, BinaryPrimitives.ReadInt32LittleEndian(payload.AsSpan(1)));
        Assert.Equal(WireSamples.ClusterA.ToByteArray(), payload[5..21]);
        Assert.Equal(nonce, BinaryPrimitives.ReadUInt128LittleEndian(payload.AsSpan(21)));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(21)]
    [InlineData(38)]
    public void Hello_of_wrong_size_is_malformed(int size) =>
        Assert.Equal(ProtocolErrorReason.MalformedPayload, Assert.Throws<ProtocolException>(() => HelloFrame.Decode(new byte[size])).Reason);

    [Fact]
    public async Task Raft_batch_round_trips_through_writer_and_reader()
    {
        var batch = new[] { WireSamples.Full(MessageType.Append, group: 1), WireSamples.Full(MessageType.Heartbeat, group: 2, entries: 0) };
        var stream = new MemoryStream();
        var writer = new FrameWriter(stream);
        await writer.WriteRaftAsync(batch);
        await writer.WriteRaftAsync(batch[..1]);
        stream.Position = 0;
        using var reader = new FrameReader(stream);
        var first = await reader.ReadAsync();
        var decoded = RaftMessageCodec.DecodeBatch(first!.Value.Payload.Span);
        Assert.Equal(2, decoded.Count);
        WireSamples.AssertSame(batch[0], decoded[0]);
        WireSamples.AssertSame(batch[1], decoded[1]);
        var second = await reader.ReadAsync();
        WireSamples.AssertSame(batch[0], Assert.Single(RaftMessageCodec.DecodeBatch(second!.Value.Payload.Span)));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(255)]
    public void Wrong_version_is_rejected(byte version)
    {
        var frame = FrameCodec.Encode(FrameType.Raft, [1, 2, 3]);
        frame[4] = version;
        Assert.Equal(ProtocolErrorReason.UnsupportedVersion, Rejects(frame));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    [InlineData(255)]
    public void Unknown_frame_type_is_rejected(byte type)
    {
        var frame = FrameCodec.Encode(FrameType.Raft, [1, 2, 3]);
        frame[5] = type;
        Assert.Equal(ProtocolErrorReason.UnknownFrameType, Rejects(frame));
    }

    [Theory]
    [InlineData(FrameCodec.MaxPayloadSize + 1u)]
    [InlineData(0x7FFF_FFFFu)]
    [InlineData(uint.MaxValue)]
    public void Oversized_length_is_rejected_before_allocating(uint length)
    {
        // Header only: a reader that allocated or read before checking would report Truncated instead.
        var header = new byte[FrameCodec.HeaderSize];
        BinaryPrimitives.WriteUInt32LittleEndian(header, length);
        header[4] = FrameCodec.ProtocolVersion;
        header[5] = (byte)FrameType.Raft;
        long before = GC.GetAllocatedBytesForCurrentThread();
        Assert.Equal(ProtocolErrorReason.FrameTooLarge, Rejects(header));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 64 * 1024, "the reader allocated a payload-sized buffer");
    }

    [Fact]
    public void Lower_limit_applies_before_the_handshake()
    {
        var frame = FrameCodec.Encode(FrameType.Hello, new byte[HelloFrame.EncodedSize + 1]);
        Assert.Equal(ProtocolErrorReason.FrameTooLarge, Rejects(frame, HelloFrame.EncodedSize));
        Assert.NotNull(ReadOne(FrameCodec.Encode(FrameType.Hello, new byte[HelloFrame.EncodedSize]), HelloFrame.EncodedSize));
    }

    [Fact]
    public void Unexpected_type_is_rejected_from_the_header()
    {
        // Raft frame where only a Hello may come: rejected as unexpected even though it is larger than a Hello.
        var frame = WireSamples.RaftFrame(WireSamples.Full(MessageType.Append));
        Assert.Equal(ProtocolErrorReason.UnexpectedFrame, Rejects(frame[..FrameCodec.HeaderSize], HelloFrame.EncodedSize, FrameType.Hello));
    }

    [Theory]
    [InlineData(FrameCodec.HeaderSize)]     // first payload byte
    [InlineData(FrameCodec.HeaderSize + 4)] // last payload byte
    [InlineData(6)]                         // checksum itself
    public void Bad_checksum_is_rejected(int position)
    {
        var frame = FrameCodec.Encode(FrameType.Raft, [1, 2, 3, 4, 5]);
        frame[position] ^= 0x40;
        Assert.Equal(ProtocolErrorReason.ChecksumMismatch, Rejects(frame));
    }

    [Fact]
    public void Every_truncation_is_rejected_and_an_empty_stream_is_a_clean_end()
    {
        var frame = WireSamples.RaftFrame(WireSamples.Full(MessageType.Append));
        Assert.Null(ReadOne([]));
        for (int cut = 1; cut < frame.Length; cut++)
            Assert.Equal(ProtocolErrorReason.Truncated, Rejects(frame[..cut]));
    }

    [Fact]
    public void Writer_refuses_an_oversized_payload()
    {
        var big = new byte[FrameCodec.MaxPayloadSize + 1];
        Assert.Throws<ArgumentException>(() => FrameCodec.Encode(FrameType.Raft, big));
    }
}
