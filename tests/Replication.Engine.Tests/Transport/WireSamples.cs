using Replication.Engine.Raft;
using Replication.Engine.Transport;
using Xunit;

namespace Replication.Engine.Tests.Transport;

/// <summary>Sample messages and a field-by-field comparison (RaftMessage and LogEntry compare lists and arrays by reference).</summary>
internal static class WireSamples
{
    public static readonly Guid ClusterA = new("0b7a6a52-52cf-4d8e-9f36-1b1f0f6a3c11");
    public static readonly Guid ClusterB = new("a3f0c2d4-1111-4e2b-8c3d-9a8b7c6d5e4f");

    /// <summary>A message of <paramref name="type"/> with every field set to a distinct non-default value.</summary>
    public static RaftMessage Full(MessageType type, int group = 7, int from = 1, int to = 2, int entries = 2) => new()
    {
        Type = type,
        Group = group,
        From = from,
        To = to,
        Term = 42,
        LogTerm = 41,
        Index = 1_000_000_007,
        Commit = 999,
        Reject = type is MessageType.AppendResponse or MessageType.VoteResponse,
        RejectHint = 123_456_789_012,
        Context = -5,
        Entries = Enumerable.Range(0, entries)
            .Select(i => new LogEntry(1_000_000_008 + i, 42, i % 2 == 0 ? EntryType.Normal : EntryType.ConfChange, Data(i * 37, seed: group + i)))
            .ToArray(),
        Voters = type is MessageType.Snapshot or MessageType.Append ? [1, 2, int.MaxValue] : [],
        Learners = type == MessageType.Snapshot ? [-7] : [],
    };

    public static byte[] Data(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    public static void AssertSame(RaftMessage expected, RaftMessage actual)
    {
        Assert.Equal(expected.Type, actual.Type);
        Assert.Equal(expected.Group, actual.Group);
        Assert.Equal(expected.From, actual.From);
        Assert.Equal(expected.To, actual.To);
        Assert.Equal(expected.Term, actual.Term);
        Assert.Equal(expected.LogTerm, actual.LogTerm);
        Assert.Equal(expected.Index, actual.Index);
        Assert.Equal(expected.Commit, actual.Commit);
        Assert.Equal(expected.Reject, actual.Reject);
        Assert.Equal(expected.RejectHint, actual.RejectHint);
        Assert.Equal(expected.Context, actual.Context);
        Assert.Equal(expected.Voters, actual.Voters);
        Assert.Equal(expected.Learners, actual.Learners);
        Assert.Equal(expected.Entries.Count, actual.Entries.Count);
        for (int i = 0; i < expected.Entries.Count; i++)
        {
            Assert.Equal(expected.Entries[i].Index, actual.Entries[i].Index);
            Assert.Equal(expected.Entries[i].Term, actual.Entries[i].Term);
            Assert.Equal(expected.Entries[i].Type, actual.Entries[i].Type);
            Assert.Equal(expected.Entries[i].Data, actual.Entries[i].Data);
        }
    }

    /// <summary>A complete Raft frame holding <paramref name="messages"/>.</summary>
    public static byte[] RaftFrame(params RaftMessage[] messages) => FrameCodec.Encode(FrameType.Raft, RaftMessageCodec.EncodeBatch(messages));

    public static byte[] HelloFrameBytes(int nodeId, Guid cluster) => FrameCodec.Encode(FrameType.Hello, new HelloFrame(nodeId, cluster).Encode());

    /// <summary>The shared secret of the test clusters, and a different one.</summary>
    public static readonly ClusterSecret SecretA = ClusterSecret.FromString("correct horse battery staple");
    public static readonly ClusterSecret WrongSecret = ClusterSecret.FromString("not the cluster secret");
    public static ClusterKey KeyA => SecretA.DeriveKey(ClusterA);

    /// <summary>
    /// Performs the dialer's side of the authenticated handshake on a raw socket stream (as node
    /// <paramref name="nodeId"/> of <paramref name="cluster"/>), so raw-socket tests can then write
    /// whatever frames they want to test. Returns the listener's challenge.
    /// </summary>
    public static async Task<ChallengeFrame> HandshakeAsync(Stream stream, int nodeId, Guid cluster, ClusterKey? key = null)
    {
        using var reader = new FrameReader(stream);
        return await Handshake.DialAsync(stream, reader, new HelloFrame(nodeId, cluster), _ => key ?? KeyA, CancellationToken.None)
            .WaitAsync(TimeSpan.FromSeconds(15));
    }
}
