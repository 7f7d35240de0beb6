using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Replication.Engine.Raft;
using Replication.Engine.Transport;
using Xunit;

namespace Replication.Engine.Tests.Transport;

/// <summary>
/// The HMAC challenge-response of docs/wire-protocol.md: unit checks of keys and proofs, and live
/// checks that a peer without the secret (or with a replayed or misdirected proof) gets no data
/// and delivers none. Bounded waits only.
/// </summary>
public sealed class AuthenticationTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);
    private const string SecretText = "correct horse battery staple";

    private sealed class Node(TcpTransport transport) : IAsyncDisposable
    {
        public TcpTransport Transport { get; } = transport;
        public Channel<RaftMessage> Inbox { get; } = Channel.CreateUnbounded<RaftMessage>();
        public ConcurrentQueue<string> LogLines { get; } = new();
        public IPEndPoint EndPoint => Transport.LocalEndPoint;
        public ValueTask DisposeAsync() => Transport.DisposeAsync();
    }

    private static async Task<Node> StartAsync(int id, ClusterSecret secret)
    {
        Node? node = null;
        var transport = new TcpTransport(id, WireSamples.ClusterA, secret.DeriveKey(WireSamples.ClusterA), new IPEndPoint(IPAddress.Loopback, 0),
            m => node!.Inbox.Writer.TryWrite(m), line => node?.LogLines.Enqueue(line));
        node = new Node(transport);
        await transport.StartAsync(CancellationToken.None);
        return node;
    }

    private static RaftMessage Msg(int from, int to) => WireSamples.Full(MessageType.Vote, group: 1, from: from, to: to, entries: 0);

    [Fact]
    public void Keys_depend_on_secret_and_cluster_and_are_redacted()
    {
        byte[] hello = new HelloFrame(1, WireSamples.ClusterA).Encode();
        var a = WireSamples.SecretA.DeriveKey(WireSamples.ClusterA);
        var same = ClusterSecret.FromString(SecretText).DeriveKey(WireSamples.ClusterA);
        var otherCluster = WireSamples.SecretA.DeriveKey(WireSamples.ClusterB);
        var otherSecret = WireSamples.WrongSecret.DeriveKey(WireSamples.ClusterA);
        Assert.Equal(a.ListenerProof(hello, 5), same.ListenerProof(hello, 5));
        Assert.NotEqual(a.ListenerProof(hello, 5), otherCluster.ListenerProof(hello, 5));
        Assert.NotEqual(a.ListenerProof(hello, 5), otherSecret.ListenerProof(hello, 5));
        Assert.NotEqual(a.ListenerProof(hello, 5), a.ListenerProof(hello, 6));           // bound to the nonce
        Assert.NotEqual(a.ListenerProof(hello, 5), a.DialerProof(hello, 5));             // no reflection
        Assert.True(a.VerifyDialerProof(hello, 5, same.DialerProof(hello, 5)));
        Assert.False(a.VerifyDialerProof(hello, 6, a.DialerProof(hello, 5)));
        Assert.False(a.VerifyDialerProof(hello, 5, new byte[31]));
        Assert.DoesNotContain(SecretText, WireSamples.SecretA.ToString());
        Assert.Equal("ClusterKey(redacted)", a.ToString());
        Assert.Equal(ClusterSecret.GeneratedLength, 32);
        Assert.Throws<ArgumentException>(() => ClusterSecret.FromString(""));
    }

    [Fact]
    public async Task Nodes_with_the_same_secret_exchange_messages()
    {
        await using var a = await StartAsync(1, WireSamples.SecretA);
        await using var b = await StartAsync(2, ClusterSecret.FromString(SecretText));
        a.Transport.SetPeer(2, b.EndPoint);
        a.Transport.Send(Msg(1, 2));
        Assert.Equal(1, (await b.Inbox.Reader.ReadAsync().AsTask().WaitAsync(Deadline)).From);
    }

    [Fact]
    public async Task A_node_with_a_wrong_secret_delivers_nothing_and_gets_nothing_both_ways()
    {
        await using var good = await StartAsync(1, WireSamples.SecretA);
        await using var bad = await StartAsync(2, WireSamples.WrongSecret);
        good.Transport.SetPeer(2, bad.EndPoint);
        bad.Transport.SetPeer(1, good.EndPoint);
        // Keep sending both ways until both dialers have failed the handshake a few times.
        Assert.True(SpinWait.SpinUntil(() =>
        {
            good.Transport.Send(Msg(1, 2));
            bad.Transport.Send(Msg(2, 1));
            return good.Transport.Stats.ConnectFailures >= 2 && bad.Transport.Stats.ConnectFailures >= 2;
        }, Deadline), "both dialers should fail to authenticate");
        Assert.Equal(0, good.Transport.Stats.MessagesReceived);
        Assert.Equal(0, bad.Transport.Stats.MessagesReceived);
        Assert.Equal(0, good.Transport.Stats.ConnectionsAccepted);
        Assert.Equal(0, bad.Transport.Stats.ConnectionsAccepted);
        Assert.False(good.Inbox.Reader.TryRead(out _));
        Assert.False(bad.Inbox.Reader.TryRead(out _));
        // The log says why, and never contains the secret.
        Assert.True(SpinWait.SpinUntil(() => good.LogLines.Any(l => l.Contains("AuthenticationFailed")), Deadline));
        foreach (var line in good.LogLines.Concat(bad.LogLines))
        {
            Assert.DoesNotContain(SecretText, line);
            Assert.DoesNotContain("not the cluster secret", line);
        }
    }

    public static TheoryData<string> ForgedProofs() => new() { "wrong-secret", "replayed", "other-nonce", "garbage-proof" };

    [Theory]
    [MemberData(nameof(ForgedProofs))]
    public async Task A_forged_or_replayed_proof_is_rejected_and_nothing_is_delivered(string kind)
    {
        await using var server = await StartAsync(1, WireSamples.SecretA);
        // Record one honest handshake (Hello and proof bytes) for the replay case.
        byte[] recordedHello, recordedProof;
        using (var honest = new TcpClient())
        {
            await honest.ConnectAsync(server.EndPoint);
            var s = honest.GetStream();
            var hello = new HelloFrame(3, WireSamples.ClusterA);
            recordedHello = FrameCodec.Encode(FrameType.Hello, hello.Encode());
            await s.WriteAsync(recordedHello);
            using var reader = new FrameReader(s);
            var challenge = ChallengeFrame.Decode((await reader.ReadAsync())!.Value.Payload.Span);
            recordedProof = FrameCodec.Encode(FrameType.Proof, WireSamples.KeyA.DialerProof(hello.Encode(), challenge.Nonce));
            await s.WriteAsync(recordedProof);
        }
        Assert.True(SpinWait.SpinUntil(() => server.Transport.Stats.ConnectionsAccepted == 1, Deadline));

        using var attacker = new TcpClient();
        await attacker.ConnectAsync(server.EndPoint);
        var stream = attacker.GetStream();
        using (var reader = new FrameReader(stream))
        {
            var hello = new HelloFrame(3, WireSamples.ClusterA);
            byte[] helloPayload = hello.Encode();
            await stream.WriteAsync(kind == "replayed" ? recordedHello : FrameCodec.Encode(FrameType.Hello, helloPayload));
            var challenge = ChallengeFrame.Decode((await reader.ReadAsync().AsTask().WaitAsync(Deadline))!.Value.Payload.Span);
            byte[] proof = kind switch
            {
                "wrong-secret" => FrameCodec.Encode(FrameType.Proof, WireSamples.WrongSecret.DeriveKey(WireSamples.ClusterA).DialerProof(helloPayload, challenge.Nonce)),
                "replayed" => recordedProof,
                "other-nonce" => FrameCodec.Encode(FrameType.Proof, WireSamples.KeyA.DialerProof(helloPayload, challenge.Nonce + 1)),
                _ => FrameCodec.Encode(FrameType.Proof, new byte[32]),
            };
            await stream.WriteAsync(proof);
            await stream.WriteAsync(WireSamples.RaftFrame(Msg(3, 1)));
            // The server closes without sending anything after its challenge.
            var rest = new byte[64];
            int got;
            try { got = await stream.ReadAsync(rest).AsTask().WaitAsync(Deadline); }
            catch (IOException) { got = 0; }
            Assert.Equal(0, got);
        }
        Assert.True(SpinWait.SpinUntil(() => server.Transport.Stats.ConnectionsRejected == 1, Deadline));
        Assert.Contains(server.LogLines, l => l.Contains("(AuthenticationFailed)"));
        Assert.Equal(0, server.Transport.Stats.MessagesReceived);
        Assert.Equal(1, server.Transport.Stats.ConnectionsAccepted);
    }

    [Fact]
    public async Task A_dialer_does_not_send_its_proof_to_a_listener_that_cannot_prove_itself()
    {
        // A fake listener with the wrong key: the dialer must refuse before sending a proof or any message.
        using var fake = new TcpListener(IPAddress.Loopback, 0);
        fake.Start();
        var accepted = Task.Run(async () =>
        {
            using var socket = await fake.AcceptSocketAsync();
            using var s = new NetworkStream(socket);
            using var reader = new FrameReader(s);
            var hello = (await reader.ReadAsync())!.Value.Payload.ToArray();
            var nonce = (UInt128)42;
            var challenge = new ChallengeFrame(nonce, WireSamples.ClusterA, WireSamples.WrongSecret.DeriveKey(WireSamples.ClusterA).ListenerProof(hello, nonce));
            await s.WriteAsync(FrameCodec.Encode(FrameType.Challenge, challenge.Encode()));
            var buffer = new byte[256];
            int total = 0, n;
            while ((n = await s.ReadAsync(buffer)) > 0) total += n;
            return total;
        });
        await using var dialer = await StartAsync(1, WireSamples.SecretA);
        dialer.Transport.SetPeer(2, (IPEndPoint)fake.LocalEndpoint);
        dialer.Transport.Send(Msg(1, 2));
        Assert.Equal(0, await accepted.WaitAsync(Deadline)); // nothing after the Hello: no proof, no Raft frame
        Assert.True(SpinWait.SpinUntil(() => dialer.Transport.Stats.ConnectFailures >= 1, Deadline));
        Assert.Equal(0, dialer.Transport.Stats.MessagesSent);
    }
}
