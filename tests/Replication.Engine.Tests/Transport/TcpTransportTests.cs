using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Replication.Engine.Raft;
using Replication.Engine.Transport;
using Xunit;
using Xunit.Abstractions;

namespace Replication.Engine.Tests.Transport;

/// <summary>
/// Real sockets on 127.0.0.1. No sleeps: every wait is on a condition (a received message, a
/// closed socket, a counter) with a bounded deadline, so a hang fails the test instead of the run.
/// </summary>
public sealed class TcpTransportTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    /// <summary>A transport and what it received.</summary>
    private sealed class Node : IAsyncDisposable
    {
        public required TcpTransport Transport { get; init; }
        public Channel<RaftMessage> Inbox { get; } = Channel.CreateUnbounded<RaftMessage>();
        public System.Collections.Concurrent.ConcurrentQueue<string> LogLines { get; } = new();
        public IPEndPoint EndPoint => Transport.LocalEndPoint;
        public TransportStats Stats => Transport.Stats;
        public ValueTask DisposeAsync() => Transport.DisposeAsync();

        public async Task<RaftMessage> ReceiveAsync() => await Inbox.Reader.ReadAsync().AsTask().WaitAsync(Deadline);
    }

    private async Task<Node> StartNodeAsync(int id, int port = 0, Guid? cluster = null, ClusterSecret? secret = null)
    {
        Node? node = null;
        var clusterId = cluster ?? WireSamples.ClusterA;
        var transport = new TcpTransport(id, clusterId, (secret ?? WireSamples.SecretA).DeriveKey(clusterId), new IPEndPoint(IPAddress.Loopback, port),
            m => node!.Inbox.Writer.TryWrite(m), line => { node?.LogLines.Enqueue(line); Log(line); });
        node = new Node { Transport = transport };
        await transport.StartAsync(CancellationToken.None);
        return node;
    }

    private void Log(string line)
    {
        try { output.WriteLine(line); }
        catch (InvalidOperationException) { /* logged after the test ended */ }
    }

    private static RaftMessage Msg(int from, int to, int group, long context = 0) =>
        WireSamples.Full(MessageType.Append, group: group, from: from, to: to, entries: 1) with { Context = context };

    private static void WaitUntil(Func<bool> condition, string what) =>
        Assert.True(SpinWait.SpinUntil(condition, Deadline), $"timed out waiting until {what}");

    /// <summary>Keeps sending (messages can be lost while a connection is being re-established) until one arrives.</summary>
    private static async Task SendUntilReceivedAsync(Node from, int fromId, Node to, int toId)
    {
        var clock = Stopwatch.StartNew();
        // One outstanding read for the whole wait: a fresh read per attempt would leave abandoned
        // reads queued on the channel, each swallowing a later message, so under load (long
        // reconnect backoff) the current read could starve forever.
        var received = to.Inbox.Reader.ReadAsync().AsTask();
        for (long attempt = 1; clock.Elapsed < Deadline; attempt++)
        {
            from.Transport.Send(Msg(fromId, toId, group: 1, context: attempt));
            try
            {
                await received.WaitAsync(TimeSpan.FromMilliseconds(100));
                return;
            }
            catch (TimeoutException)
            {
                // Not yet: the sender is still backing off or reconnecting.
            }
        }
        Assert.Fail($"no message from node {fromId} reached node {toId} within {Deadline}");
    }

    private static int FreePort() => Cluster.ClusterNodeTests.FreePort();

    /// <summary>Completes when the server has closed the connection under <paramref name="stream"/> (end of stream or reset).</summary>
    private static async Task AssertClosedByServerAsync(NetworkStream stream)
    {
        var buffer = new byte[256];
        try
        {
            while (await stream.ReadAsync(buffer).AsTask().WaitAsync(Deadline) > 0) { }
        }
        catch (IOException)
        {
            // Reset: also closed.
        }
    }

    [Fact]
    public async Task Two_transports_exchange_messages_both_ways_over_one_connection_per_direction()
    {
        await using var a = await StartNodeAsync(1);
        await using var b = await StartNodeAsync(2);
        a.Transport.SetPeer(2, b.EndPoint);
        b.Transport.SetPeer(1, a.EndPoint);

        var sent = Enumerable.Range(1, 50).Select(g => Msg(1, 2, group: g)).ToArray();
        foreach (var m in sent) a.Transport.Send(m);
        foreach (var m in sent) WireSamples.AssertSame(m, await b.ReceiveAsync()); // one connection: order kept

        var replies = Enumerable.Range(1, 5).Select(g => WireSamples.Full(MessageType.AppendResponse, group: g, from: 2, to: 1, entries: 0)).ToArray();
        foreach (var m in replies) b.Transport.Send(m);
        foreach (var m in replies) WireSamples.AssertSame(m, await a.ReceiveAsync());

        // Fifty groups, one connection each way; batching may put several messages in one frame.
        Assert.Equal(1, a.Stats.ConnectionsOpened);
        Assert.Equal(1, b.Stats.ConnectionsAccepted);
        Assert.Equal(1, b.Stats.ConnectionsOpened);
        Assert.Equal(1, a.Stats.ConnectionsAccepted);
        WaitUntil(() => a.Stats.MessagesSent == 50, "the sender counted its 50 messages (it counts after the write returns)");
        Assert.Equal(50, b.Stats.MessagesReceived);
        Assert.InRange(b.Stats.FramesReceived, 1, 50);
        Assert.Equal(0, a.Stats.MessagesDropped + b.Stats.MessagesDropped);
    }

    /// <summary>
    /// A liveness signal may be written on the sending thread (PeerSender.TrySendNow) when nothing waits before it; mixed with
    /// queued messages from the same thread it still arrives in the order sent, and none is lost.
    /// </summary>
    [Fact]
    public async Task Liveness_signals_written_at_once_keep_their_order_among_queued_messages()
    {
        await using var a = await StartNodeAsync(1);
        await using var b = await StartNodeAsync(2);
        a.Transport.SetPeer(2, b.EndPoint);
        await SendUntilReceivedAsync(a, 1, b, 2); // connected, and the sender thread idle again

        static RaftMessage Liveness(long stamp) => new() { Type = MessageType.Liveness, From = 1, To = 2, Context = stamp };
        long before = a.Stats.MessagesSent;
        var alone = Liveness(-1); // nothing queued: written on this thread
        a.Transport.Send(alone);
        WireSamples.AssertSame(alone, await b.ReceiveAsync());

        var sent = Enumerable.Range(1, 300).Select(i => i % 3 == 0 ? Liveness(i) : Msg(1, 2, group: i, context: i)).ToArray();
        foreach (var m in sent) a.Transport.Send(m);
        foreach (var m in sent) WireSamples.AssertSame(m, await b.ReceiveAsync());
        WaitUntil(() => a.Stats.MessagesSent >= before + 301, "the sender counted every message");
        Assert.Equal(0, a.Stats.MessagesDropped);
    }

    public static TheoryData<string, ProtocolErrorReason> BadClients() => new()
    {
        { "garbage", ProtocolErrorReason.UnsupportedVersion },
        { "wrong-cluster", ProtocolErrorReason.ClusterMismatch },
        { "wrong-version", ProtocolErrorReason.UnsupportedVersion },
        { "raft-before-hello", ProtocolErrorReason.UnexpectedFrame },
        { "truncated", ProtocolErrorReason.Truncated },
        { "bad-crc", ProtocolErrorReason.ChecksumMismatch },
        { "second-hello", ProtocolErrorReason.UnexpectedFrame },
        { "no-proof", ProtocolErrorReason.UnexpectedFrame },
        { "hello-then-close", ProtocolErrorReason.AuthenticationFailed },
    };

    [Theory]
    [MemberData(nameof(BadClients))]
    public async Task A_misbehaving_connection_is_closed_and_counted_and_others_are_still_served(string kind, ProtocolErrorReason reason)
    {
        await using var server = await StartNodeAsync(1);
        await using var good = await StartNodeAsync(2);
        good.Transport.SetPeer(1, server.EndPoint);
        good.Transport.Send(Msg(2, 1, group: 1));
        await server.ReceiveAsync();

        using (var bad = new TcpClient())
        {
            await bad.ConnectAsync(server.EndPoint);
            var stream = bad.GetStream();
            var hello = WireSamples.HelloFrameBytes(3, WireSamples.ClusterA);
            var raft = WireSamples.RaftFrame(Msg(3, 1, group: 1));
            switch (kind)
            {
                case "garbage":
                    await stream.WriteAsync("GET / HTTP/1.1\r\nHost: replication\r\n\r\n"u8.ToArray());
                    break;
                case "wrong-cluster":
                    await stream.WriteAsync(WireSamples.HelloFrameBytes(3, WireSamples.ClusterB));
                    break;
                case "wrong-version":
                    await stream.WriteAsync(FrameCodec.Encode(FrameType.Hello, new HelloFrame(99, 3, WireSamples.ClusterA, 1).Encode()));
                    break;
                case "raft-before-hello":
                    await stream.WriteAsync(raft);
                    break;
                case "truncated":
                    await WireSamples.HandshakeAsync(stream, 3, WireSamples.ClusterA);
                    await stream.WriteAsync(raft.AsMemory(0, raft.Length - 5));
                    bad.Client.Shutdown(SocketShutdown.Send);
                    break;
                case "bad-crc":
                    raft[^1] ^= 1;
                    await WireSamples.HandshakeAsync(stream, 3, WireSamples.ClusterA);
                    await stream.WriteAsync(raft);
                    break;
                case "second-hello":
                    await WireSamples.HandshakeAsync(stream, 3, WireSamples.ClusterA);
                    await stream.WriteAsync(hello);
                    break;
                case "no-proof": // Hello, then a Raft frame instead of the proof
                    await stream.WriteAsync(hello);
                    await stream.WriteAsync(raft);
                    break;
                case "hello-then-close":
                    await stream.WriteAsync(hello);
                    bad.Client.Shutdown(SocketShutdown.Send);
                    break;
            }
            await AssertClosedByServerAsync(stream);
        }
        WaitUntil(() => server.Stats.ConnectionsRejected == 1, "the bad connection is counted");
        Assert.Contains(server.LogLines, line => line.Contains($"({reason})", StringComparison.Ordinal));

        // The well-behaved peer's connection was untouched, and new peers are still accepted.
        good.Transport.Send(Msg(2, 1, group: 2, context: 77));
        Assert.Equal(77, (await server.ReceiveAsync()).Context);
        Assert.Equal(1, good.Stats.ConnectionsOpened);
        await using var late = await StartNodeAsync(4);
        late.Transport.SetPeer(1, server.EndPoint);
        late.Transport.Send(Msg(4, 1, group: 3));
        Assert.Equal(4, (await server.ReceiveAsync()).From);
        Assert.Equal(0, server.Stats.MessagesReceived - 3); // nothing from the bad client got through
    }

    [Fact]
    public async Task Messages_not_for_this_node_or_not_from_the_handshaken_sender_are_dropped()
    {
        await using var server = await StartNodeAsync(1);
        using var client = new TcpClient();
        await client.ConnectAsync(server.EndPoint);
        var stream = client.GetStream();
        await WireSamples.HandshakeAsync(stream, 5, WireSamples.ClusterA);
        await stream.WriteAsync(WireSamples.RaftFrame(Msg(6, 1, group: 1), Msg(5, 9, group: 1), Msg(5, 1, group: 1, context: 3)));
        Assert.Equal(3, (await server.ReceiveAsync()).Context);
        WaitUntil(() => server.Stats.DroppedMisaddressed == 2, "two misaddressed messages are counted");
        Assert.Equal(1, server.Stats.MessagesReceived);
    }

    [Fact]
    public async Task Sending_to_a_down_peer_neither_blocks_nor_throws_and_flows_once_it_is_up()
    {
        int port = FreePort();
        await using var a = await StartNodeAsync(1);
        a.Transport.SetPeer(2, new IPEndPoint(IPAddress.Loopback, port));

        var clock = Stopwatch.StartNew();
        for (int i = 0; i < 20_000; i++) a.Transport.Send(Msg(1, 2, group: i % 64));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"20,000 sends to a down peer took {clock.Elapsed}");
        WaitUntil(() => a.Stats.ConnectFailures >= 1 && a.Stats.MessagesDropped > 0, "connection failures and drops are counted");

        await using var b = await StartNodeAsync(2, port);
        await SendUntilReceivedAsync(a, 1, b, 2);
        Assert.Equal(1, a.Stats.ConnectionsOpened);
    }

    [Fact]
    public async Task A_killed_peer_does_not_disturb_the_sender_and_a_restarted_one_is_reached_again()
    {
        await using var a = await StartNodeAsync(1);
        var b1 = await StartNodeAsync(2);
        int port = b1.EndPoint.Port;
        a.Transport.SetPeer(2, b1.EndPoint);
        await SendUntilReceivedAsync(a, 1, b1, 2);

        await b1.DisposeAsync();
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < 5_000; i++) a.Transport.Send(Msg(1, 2, group: i % 8));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"sends to a killed peer took {clock.Elapsed}");

        await using var b2 = await StartNodeAsync(2, port);
        await SendUntilReceivedAsync(a, 1, b2, 2);
        Assert.True(a.Stats.ConnectionsOpened >= 2);
    }

    [Fact]
    public async Task A_changed_peer_address_is_dialled()
    {
        await using var a = await StartNodeAsync(1);
        await using var b1 = await StartNodeAsync(2);
        await using var b2 = await StartNodeAsync(2);
        a.Transport.SetPeer(2, b1.EndPoint);
        await SendUntilReceivedAsync(a, 1, b1, 2);
        a.Transport.SetPeer(2, b2.EndPoint);
        await SendUntilReceivedAsync(a, 1, b2, 2);

        a.Transport.RemovePeer(2);
        a.Transport.Send(Msg(1, 2, group: 1));
        WaitUntil(() => a.Stats.DroppedUnroutable == 1, "a message to a removed peer is dropped");
    }

    [Fact]
    public async Task Disposal_is_prompt_with_a_down_peer_a_stuck_peer_and_an_open_inbound_connection()
    {
        var a = await StartNodeAsync(1);
        a.Transport.SetPeer(2, new IPEndPoint(IPAddress.Loopback, FreePort()));

        // A peer that accepts TCP connections (kernel backlog) but never answers: the sender's dial hangs in the handshake.
        using var stuck = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        stuck.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        stuck.Listen(8);
        a.Transport.SetPeer(3, (IPEndPoint)stuck.LocalEndPoint!);
        var big = new RaftMessage { Type = MessageType.Append, From = 1, To = 3, Entries = [new LogEntry(1, 1, EntryType.Normal, new byte[256 * 1024])] };
        for (int i = 0; i < 200; i++) a.Transport.Send(big);
        for (int i = 0; i < 100; i++) a.Transport.Send(Msg(1, 2, group: i));
        WaitUntil(() => a.Stats.ConnectFailures >= 1, "the down peer has failed (the stuck one is mid-handshake)");

        using var inbound = new TcpClient();
        await inbound.ConnectAsync(a.EndPoint);
        var inboundStream = inbound.GetStream();
        await WireSamples.HandshakeAsync(inboundStream, 4, WireSamples.ClusterA);
        WaitUntil(() => a.Stats.ConnectionsAccepted == 1, "the inbound connection is handshaken");

        var clock = Stopwatch.StartNew();
        await a.DisposeAsync().AsTask().WaitAsync(Deadline);
        // Not a speed assertion: disposal must cancel the stuck dial, not wait out its handshake timeout.
        Assert.True(clock.Elapsed < Handshake.Timeout, $"disposal took {clock.Elapsed}, as long as the stuck handshake's timeout");
        await AssertClosedByServerAsync(inboundStream);

        a.Transport.Send(Msg(1, 2, group: 1)); // after disposal: dropped, no exception
        await a.DisposeAsync();                // idempotent
    }
}
