using System.Buffers.Binary;
using Replication.Engine.Raft;
using Replication.Engine.Transport;
using Xunit;

namespace Replication.Engine.Tests.Transport;

/// <summary>Round trips of every message kind and batch, and the decoder's refusal of malformed payloads.</summary>
public sealed class RaftMessageCodecTests
{
    public static TheoryData<MessageType> AllMessageTypes() => new(Enum.GetValues<MessageType>());

    private static ProtocolErrorReason Rejects(byte[] payload) =>
        Assert.Throws<ProtocolException>(() => RaftMessageCodec.DecodeBatch(payload)).Reason;

    [Theory]
    [MemberData(nameof(AllMessageTypes))]
    public void Every_message_type_round_trips(MessageType type)
    {
        foreach (var entries in new[] { 0, 3 })
        {
            var message = WireSamples.Full(type, entries: entries);
            var bytes = new byte[RaftMessageCodec.GetEncodedSize(message)];
            Assert.Equal(bytes.Length, RaftMessageCodec.Encode(message, bytes));
            WireSamples.AssertSame(message, RaftMessageCodec.Decode(bytes));
        }
    }

    [Fact]
    public void Extreme_field_values_round_trip()
    {
        var message = new RaftMessage
        {
            Type = MessageType.AppendResponse,
            Group = int.MinValue,
            From = int.MaxValue,
            To = -1,
            Term = long.MaxValue,
            LogTerm = long.MinValue,
            Index = -1,
            Commit = 0,
            Reject = true,
            RejectHint = long.MinValue,
            Context = long.MaxValue,
            Entries = [new LogEntry(long.MaxValue, long.MinValue, EntryType.Normal, [])],
        };
        WireSamples.AssertSame(message, Assert.Single(RaftMessageCodec.DecodeBatch(RaftMessageCodec.EncodeBatch([message]))));
    }

    [Fact]
    public void Batch_of_several_groups_and_entry_kinds_round_trips()
    {
        var batch = new List<RaftMessage>();
        int group = 0;
        foreach (var type in Enum.GetValues<MessageType>())
            batch.Add(WireSamples.Full(type, group: ++group, entries: group % 4));
        batch.Add(WireSamples.Full(MessageType.Append, group: 99) with
        {
            Entries = [new LogEntry(5, 2, EntryType.Normal, []), new LogEntry(6, 2, EntryType.ConfChange, WireSamples.Data(70_000, 1))],
        });
        var payload = RaftMessageCodec.EncodeBatch(batch);
        Assert.Equal(RaftMessageCodec.GetBatchSize(batch), payload.Length);
        var decoded = RaftMessageCodec.DecodeBatch(payload);
        Assert.Equal(batch.Count, decoded.Count);
        for (int i = 0; i < batch.Count; i++) WireSamples.AssertSame(batch[i], decoded[i]);
    }

    [Fact]
    public void Message_layout_is_pinned()
    {
        // Offsets from docs/wire-protocol.md; a change here is a protocol change.
        var m = WireSamples.Full(MessageType.Append, group: 7, from: 1, to: 2, entries: 1);
        var b = new byte[RaftMessageCodec.GetEncodedSize(m)];
        RaftMessageCodec.Encode(m, b);
        Assert.Equal(66, RaftMessageCodec.MessageFixedSize);
        Assert.Equal(21, RaftMessageCodec.EntryFixedSize);
        Assert.Equal((byte)MessageType.Append, b[0]);
        Assert.Equal(7, BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(1)));
        Assert.Equal(2, BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(9)));
        Assert.Equal(42, BinaryPrimitives.ReadInt64LittleEndian(b.AsSpan(13)));
        Assert.Equal(999, BinaryPrimitives.ReadInt64LittleEndian(b.AsSpan(37)));
        Assert.Equal(0, b[45]); // Append is sampled without Reject
        Assert.Equal(-5, BinaryPrimitives.ReadInt64LittleEndian(b.AsSpan(54)));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(62)));
        Assert.Equal(1_000_000_008, BinaryPrimitives.ReadInt64LittleEndian(b.AsSpan(66)));
    }

    [Fact]
    public void Every_prefix_of_a_valid_batch_is_rejected()
    {
        var payload = RaftMessageCodec.EncodeBatch([WireSamples.Full(MessageType.Append, entries: 2), WireSamples.Full(MessageType.Vote, entries: 0)]);
        for (int cut = 0; cut < payload.Length; cut++)
            Assert.Equal(ProtocolErrorReason.MalformedPayload, Rejects(payload[..cut]));
    }

    [Fact]
    public void Trailing_bytes_are_rejected()
    {
        var payload = RaftMessageCodec.EncodeBatch([WireSamples.Full(MessageType.Heartbeat)]);
        Assert.Equal(ProtocolErrorReason.MalformedPayload, Rejects([.. payload, 0]));
        var single = new byte[RaftMessageCodec.GetEncodedSize(WireSamples.Full(MessageType.Vote)) + 1];
        RaftMessageCodec.Encode(WireSamples.Full(MessageType.Vote), single);
        Assert.Equal(ProtocolErrorReason.MalformedPayload, Assert.Throws<ProtocolException>(() => RaftMessageCodec.Decode(single)).Reason);
    }

    [Fact]
    public void Empty_batch_is_rejected() => Assert.Equal(ProtocolErrorReason.MalformedPayload, Rejects([0, 0, 0, 0]));

    [Theory]
    [InlineData(uint.MaxValue)]
    [InlineData(0x0100_0000u)]
    [InlineData(2u)] // only one message follows
    public void Message_count_beyond_the_payload_is_rejected(uint count)
    {
        var payload = RaftMessageCodec.EncodeBatch([WireSamples.Full(MessageType.Heartbeat)]);
        BinaryPrimitives.WriteUInt32LittleEndian(payload, count);
        long before = GC.GetAllocatedBytesForCurrentThread();
        Assert.Equal(ProtocolErrorReason.MalformedPayload, Rejects(payload));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 64 * 1024, "the decoder allocated for the declared count");
    }

    [Theory]
    [InlineData(4 + 0, 0)]             // message type 0
    [InlineData(4 + 0, 15)]            // message type past Liveness
    [InlineData(4 + 45, 2)]            // undefined flag bit
    [InlineData(4 + 66 + 16, 2)]       // entry type past ConfChange
    public void Unknown_enum_values_and_flags_are_rejected(int offset, byte value)
    {
        var payload = RaftMessageCodec.EncodeBatch([WireSamples.Full(MessageType.Append, entries: 1)]);
        payload[offset] = value;
        Assert.Equal(ProtocolErrorReason.MalformedPayload, Rejects(payload));
    }

    [Theory]
    [InlineData(4 + 62, uint.MaxValue)]     // entry count
    [InlineData(4 + 62, 2u)]                // entry count one too many
    [InlineData(4 + 66 + 17, uint.MaxValue)] // entry data length
    [InlineData(4 + 66 + 17, 1000u)]         // entry data length beyond the payload
    public void Lengths_beyond_the_payload_are_rejected(int offset, uint value)
    {
        var payload = RaftMessageCodec.EncodeBatch([WireSamples.Full(MessageType.Append, entries: 1)]);
        BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(offset), value);
        long before = GC.GetAllocatedBytesForCurrentThread();
        Assert.Equal(ProtocolErrorReason.MalformedPayload, Rejects(payload));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 64 * 1024, "the decoder allocated for the declared length");
    }

    [Fact]
    public void Garbage_payloads_are_rejected()
    {
        Assert.Equal(ProtocolErrorReason.MalformedPayload, Rejects([]));
        Assert.Equal(ProtocolErrorReason.MalformedPayload, Rejects([1, 2, 3]));
        Assert.Equal(ProtocolErrorReason.MalformedPayload, Rejects(Enumerable.Repeat((byte)0xFF, 500).ToArray()));
        Assert.Equal(ProtocolErrorReason.MalformedPayload, Rejects("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray()));
    }
}
