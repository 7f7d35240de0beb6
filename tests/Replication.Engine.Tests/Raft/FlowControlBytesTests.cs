using System.Text;
using Replication.Engine.Raft;
using Xunit;

namespace Replication.Engine.Tests.Raft.Core2;

/// <summary>Pipelined appends bounded by bytes in flight as well as by message count (thesis 10.2.2; etcd MaxInflightBytes).</summary>
public sealed class FlowControlBytesTests
{
    private const int Payload = 100; // LogEntry.Size = 117

    [Fact]
    public void Inflight_window_is_bounded_by_bytes_and_released_on_acknowledgment()
    {
        // Reference: thesis 10.2.2 (pipelining AppendEntries), with a byte bound on the pipeline per follower.
        var c = new CoreTestCluster(new[] { 1, 2 }, seed: 3, configure: cfg => cfg with
        {
            MaxSizePerMessage = 1,          // one entry per Append
            MaxInflightMessages = 100,
            MaxInflightBytes = 3 * (Payload + 17),
        });
        c.Campaign(1);
        var leader = c.Leader();
        c.Propose(1, "warm"); // the follower is now in replicate state
        bool hold = true;
        c.Drop = m => hold && m.Type == MessageType.AppendResponse;
        int sentBefore = c.Sent.Count;
        for (int i = 0; i < 10; i++) leader.Propose(new[] { Encoding.UTF8.GetBytes(new string('x', Payload)) });
        c.Settle();
        var appends = c.Sent.Skip(sentBefore).Where(m => m.Type == MessageType.Append && m.To == 2 && m.Entries.Count > 0).ToList();
        Assert.Equal(3, appends.Count); // 3 × 117 bytes fill the window; the count limit (100) is far away

        hold = false;
        c.Tick(15);
        Assert.Equal(leader.LastIndex, c[2].LastIndex);
        Assert.Equal(leader.LastIndex, leader.MatchIndexes()[2]);
    }

    [Fact]
    public void A_single_message_larger_than_the_byte_window_still_goes_out()
    {
        // An empty window always admits one message, so a large entry cannot stall replication.
        var c = new CoreTestCluster(new[] { 1, 2 }, seed: 4, configure: cfg => cfg with { MaxInflightBytes = 10 });
        c.Campaign(1);
        long idx = c.Propose(1, new string('y', 1000));
        Assert.True(c[2].LastIndex >= idx);
        Assert.True(c.Leader().Committed >= idx);
    }

    [Fact]
    public void Inflights_tracks_bytes_and_frees_them()
    {
        var w = new Inflights(capacity: 10, maxBytes: 100);
        w.Add(1, 40);
        w.Add(2, 40);
        Assert.False(w.Full);
        w.Add(3, 30);
        Assert.True(w.Full);
        Assert.Equal(110, w.Bytes);
        w.FreeLE(2);
        Assert.Equal(30, w.Bytes);
        Assert.False(w.Full);
        w.FreeFirstOne();
        Assert.Equal(0, w.Bytes);
        Assert.Equal(0, w.Count);
    }
}
