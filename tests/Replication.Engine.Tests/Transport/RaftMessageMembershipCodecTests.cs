using System.Buffers.Binary;
using Replication.Engine.Raft;
using Replication.Engine.Transport;
using Xunit;

namespace Replication.Engine.Tests.Transport;

/// <summary>The membership trailer (Snapshot metadata, bootstrap membership on Appends from 0) and ConfChange entry data.</summary>
public sealed class RaftMessageMembershipCodecTests
{
    private static RaftMessage SnapshotMessage() => new()
    {
        Type = MessageType.Snapshot,
        Group = 3,
        From = 1,
        To = 4,
        Term = 9,
        Index = 1_000,
        LogTerm = 8,
        Commit = 1_200,
        Voters = [1, 2, 3],
        Learners = [4, 5],
    };

    [Fact]
    public void Snapshot_message_membership_round_trips()
    {
        var m = SnapshotMessage();
        WireSamples.AssertSame(m, Assert.Single(RaftMessageCodec.DecodeBatch(RaftMessageCodec.EncodeBatch([m]))));
    }

    [Fact]
    public void Trailer_follows_the_entries_and_is_pinned()
    {
        var m = SnapshotMessage() with { Type = MessageType.Append, Entries = [new LogEntry(1, 1, EntryType.Normal, [9, 9])] };
        var b = new byte[RaftMessageCodec.GetEncodedSize(m)];
        Assert.Equal(b.Length, RaftMessageCodec.Encode(m, b));
        int trailer = RaftMessageCodec.MessageFixedSize + RaftMessageCodec.EntryFixedSize + 2;
        Assert.Equal(trailer + RaftMessageCodec.MembershipFixedSize + 4 * 5, b.Length);
        Assert.Equal(3u, BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(trailer)));
        Assert.Equal(1, BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(trailer + 4)));
        Assert.Equal(3, BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(trailer + 12)));
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(trailer + 16)));
        Assert.Equal(5, BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(trailer + 24)));
    }

    [Fact]
    public void A_message_without_membership_carries_an_empty_trailer()
    {
        var m = new RaftMessage { Type = MessageType.Heartbeat, From = 1, To = 2 };
        Assert.Equal(RaftMessageCodec.MessageFixedSize + RaftMessageCodec.MembershipFixedSize, RaftMessageCodec.GetEncodedSize(m));
        var decoded = RaftMessageCodec.Decode(EncodeOne(m));
        Assert.Empty(decoded.Voters);
        Assert.Empty(decoded.Learners);
    }

    [Theory]
    [InlineData(0, uint.MaxValue)]   // voter count
    [InlineData(0, 6u)]              // one voter more than the bytes hold (3 voters + learner trailer = 5 ids)
    [InlineData(16, uint.MaxValue)]  // learner count
    [InlineData(16, 3u)]             // one learner too many
    public void Membership_counts_beyond_the_payload_are_rejected(int trailerOffset, uint value)
    {
        var payload = RaftMessageCodec.EncodeBatch([SnapshotMessage()]);
        BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(4 + RaftMessageCodec.MessageFixedSize + trailerOffset), value);
        long before = GC.GetAllocatedBytesForCurrentThread();
        Assert.Equal(ProtocolErrorReason.MalformedPayload, Assert.Throws<ProtocolException>(() => RaftMessageCodec.DecodeBatch(payload)).Reason);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 64 * 1024, "the decoder allocated for the declared count");
    }

    [Fact]
    public void Every_prefix_of_a_snapshot_message_is_rejected()
    {
        var payload = RaftMessageCodec.EncodeBatch([SnapshotMessage()]);
        for (int cut = 0; cut < payload.Length; cut++)
            Assert.Throws<ProtocolException>(() => RaftMessageCodec.DecodeBatch(payload[..cut]));
    }

    [Theory]
    [InlineData(ConfChangeType.AddVoter, 1)]
    [InlineData(ConfChangeType.AddLearner, int.MaxValue)]
    [InlineData(ConfChangeType.RemoveNode, -3)]
    [InlineData(ConfChangeType.PromoteLearner, 42)]
    public void ConfChange_round_trips(ConfChangeType type, int node)
    {
        var cc = new ConfChange(type, node);
        var bytes = cc.Encode();
        Assert.Equal(ConfChange.EncodedSize, bytes.Length);
        Assert.Equal(cc, ConfChange.Decode(bytes));
    }

    [Fact]
    public void ConfChange_encoding_is_pinned()
    {
        // Persisted in the log: a change here must keep decoding format 1.
        Assert.Equal(new byte[] { 1, 4, 0x2A, 0, 0, 0 }, new ConfChange(ConfChangeType.PromoteLearner, 42).Encode());
        Assert.Equal(1, (int)ConfChangeType.AddVoter);
        Assert.Equal(2, (int)ConfChangeType.AddLearner);
        Assert.Equal(3, (int)ConfChangeType.RemoveNode);
        Assert.Equal(4, (int)ConfChangeType.PromoteLearner);
    }

    public static TheoryData<byte[]> MalformedConfChanges() => new()
    {
        Array.Empty<byte>(),
        new byte[] { 1, 1, 5, 0, 0 },          // too short
        new byte[] { 1, 1, 5, 0, 0, 0, 0 },    // too long
        new byte[] { 2, 1, 5, 0, 0, 0 },       // unknown format
        new byte[] { 1, 0, 5, 0, 0, 0 },       // type 0
        new byte[] { 1, 5, 5, 0, 0, 0 },       // type past PromoteLearner
        new byte[] { 1, 1, 0, 0, 0, 0 },       // node 0
    };

    [Theory]
    [MemberData(nameof(MalformedConfChanges))]
    public void Malformed_ConfChange_data_is_refused(byte[] data)
    {
        Assert.False(ConfChange.TryDecode(data, out _));
        Assert.Throws<FormatException>(() => ConfChange.Decode(data));
    }

    private static byte[] EncodeOne(RaftMessage m)
    {
        var b = new byte[RaftMessageCodec.GetEncodedSize(m)];
        RaftMessageCodec.Encode(m, b);
        return b;
    }
}
