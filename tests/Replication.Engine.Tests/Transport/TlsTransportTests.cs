using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Threading.Channels;
using Replication.Engine.Client;
using Replication.Engine.Cluster;
using Replication.Engine.Raft;
using Replication.Engine.Security;
using Replication.Engine.Tests.Security;
using Replication.Engine.Transport;
using Xunit;
using Xunit.Abstractions;

namespace Replication.Engine.Tests.Transport;

/// <summary>
/// TLS between nodes (TcpTransport) and from clients (ClientConnection, ClusterClient): peers with
/// the right certificates talk; a peer without a CA-signed certificate, with an expired one, with a
/// client certificate speaking for a node, with no certificate, or of the other security mode is
/// refused and the node keeps serving; an eavesdropper's capture holds no key or value (and does in
/// the shared-secret mode, so the check can fail); certificates rotate without a restart.
/// Real sockets on 127.0.0.1; every wait is on a condition with a bound, never a sleep.
/// </summary>
public sealed class TlsTransportTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);
    private readonly TestCertificates _certificates = new();

    public void Dispose() => _certificates.Dispose();

    private sealed class Node : IAsyncDisposable
    {
        public required TcpTransport Transport { get; init; }
        public Channel<RaftMessage> Inbox { get; } = Channel.CreateUnbounded<RaftMessage>();
        public ConcurrentQueue<string> LogLines { get; } = new();
        public IPEndPoint EndPoint => Transport.LocalEndPoint;
        public TransportStats Stats => Transport.Stats;
        public ValueTask DisposeAsync() => Transport.DisposeAsync();
    }

    private async Task<Node> StartAsync(int id, TransportSecurity security, IClientRequestHandler? clients = null)
    {
        Node? node = null;
        var transport = new TcpTransport(id, WireSamples.ClusterA, security, new IPEndPoint(IPAddress.Loopback, 0),
            m => node!.Inbox.Writer.TryWrite(m), line => { node?.LogLines.Enqueue(line); Log(line); }, clients);
        node = new Node { Transport = transport };
        await transport.StartAsync(CancellationToken.None);
        return node;
    }

    private void Log(string line)
    {
        try { output.WriteLine(line); }
        catch (InvalidOperationException) { /* after the test ended */ }
    }

    private static RaftMessage Msg(int from, int to, long context = 0, byte[]? data = null) =>
        WireSamples.Full(MessageType.Append, group: 1, from: from, to: to, entries: 0) with
        {
            Context = context,
            Entries = data is null ? [] : [new LogEntry(7, 3, EntryType.Normal, data)],
        };

    private static void WaitUntil(Func<bool> condition, string what) =>
        Assert.True(SpinWait.SpinUntil(condition, Deadline), $"timed out waiting until {what}");

    /// <summary>Keeps sending (a connection may be in the making) until one message arrives; returns it.</summary>
    private static async Task<RaftMessage> SendUntilReceivedAsync(Node from, int fromId, Node to, int toId, byte[]? data = null)
    {
        var clock = Stopwatch.StartNew();
        var received = to.Inbox.Reader.ReadAsync().AsTask();
        for (long attempt = 1; clock.Elapsed < Deadline; attempt++)
        {
            from.Transport.Send(Msg(fromId, toId, attempt, data));
            try { return await received.WaitAsync(TimeSpan.FromMilliseconds(100)); }
            catch (TimeoutException) { }
        }
        throw new Xunit.Sdk.XunitException($"no message from node {fromId} reached node {toId} within {Deadline}");
    }

    // ---- nodes ----

    [Fact]
    public async Task Nodes_with_certificates_of_the_cluster_CA_exchange_messages_both_ways()
    {
        await using var a = await StartAsync(1, _certificates.NodeSecurity("a"));
        await using var b = await StartAsync(2, _certificates.NodeSecurity("b"));
        Assert.True(a.Transport.Security.IsTls);
        a.Transport.SetPeer(2, b.EndPoint);
        b.Transport.SetPeer(1, a.EndPoint);
        Assert.Equal(1, (await SendUntilReceivedAsync(a, 1, b, 2)).From);
        Assert.Equal(2, (await SendUntilReceivedAsync(b, 2, a, 1)).From);
        // Many messages on the established connection, in order.
        for (int i = 0; i < 200; i++) a.Transport.Send(Msg(1, 2, 10_000 + i));
        long expected = 10_000;
        while (expected < 10_200)
        {
            var m = await b.Inbox.Reader.ReadAsync().AsTask().WaitAsync(Deadline);
            if (m.Context < 10_000) continue;
            Assert.Equal(expected++, m.Context);
        }
        Assert.Contains(b.LogLines, l => l.Contains("accepted node 1") && l.Contains("CN=node"));
        Assert.Equal(0, a.Stats.ConnectionsRejected + b.Stats.ConnectionsRejected);
    }

    [Fact]
    public async Task A_node_with_a_certificate_of_another_CA_gets_nothing_and_delivers_nothing_both_ways()
    {
        using var other = new TestCertificates();
        await using var good = await StartAsync(1, _certificates.NodeSecurity("good"));
        await using var stranger = await StartAsync(2, other.NodeSecurity("stranger"));
        good.Transport.SetPeer(2, stranger.EndPoint);
        stranger.Transport.SetPeer(1, good.EndPoint);
        WaitUntil(() =>
        {
            good.Transport.Send(Msg(1, 2));
            stranger.Transport.Send(Msg(2, 1));
            return good.Stats.ConnectFailures >= 2 && stranger.Stats.ConnectFailures >= 2 && good.Stats.ConnectionsRejected >= 1 && stranger.Stats.ConnectionsRejected >= 1;
        }, "both dialers fail and both listeners refuse");
        Assert.Equal(0, good.Stats.MessagesReceived + stranger.Stats.MessagesReceived);
        Assert.Equal(0, good.Stats.ConnectionsAccepted + stranger.Stats.ConnectionsAccepted);
        Assert.Contains(good.LogLines, l => l.Contains($"({ProtocolErrorReason.CertificateRejected})") && l.Contains("not signed by a CA in ca.crt"));
        await AssertStillServesAsync(good, 1);
    }

    public static TheoryData<string, ProtocolErrorReason, string> RefusedDialers() => new()
    {
        { "self-signed", ProtocolErrorReason.CertificateRejected, "not signed by a CA in ca.crt" },
        { "expired", ProtocolErrorReason.CertificateRejected, "expired" },
        { "no-certificate", ProtocolErrorReason.CertificateRejected, "no certificate" },
        { "client-as-node", ProtocolErrorReason.CertificateRejected, "cannot speak for node 3" },
        { "shared-secret", ProtocolErrorReason.SecurityModeMismatch, "requires TLS" },
        { "tls-1.2", ProtocolErrorReason.TlsHandshakeFailed, "" },
    };

    [Theory]
    [MemberData(nameof(RefusedDialers))]
    public async Task A_refused_dialer_gets_no_frame_delivers_nothing_and_the_node_keeps_serving(string kind, ProtocolErrorReason reason, string because)
    {
        await using var server = await StartAsync(1, _certificates.NodeSecurity("server"));
        using (var socket = new Socket(SocketType.Stream, ProtocolType.Tcp))
        {
            await socket.ConnectAsync(server.EndPoint);
            var network = new NetworkStream(socket, ownsSocket: false);
            switch (kind)
            {
                case "shared-secret":
                    // The shared-secret handshake against a TLS node: the node closes without a Challenge.
                    await Assert.ThrowsAsync<IOException>(() => WireSamples.HandshakeAsync(network, 3, WireSamples.ClusterA));
                    break;
                case "client-as-node":
                {
                    // A genuine client certificate of this CA, but a node's Hello: refused after TLS.
                    var client = _certificates.ClientSecurity("posing");
                    var e = await Assert.ThrowsAsync<ProtocolException>(() =>
                        Handshake.DialSecuredAsync(socket, "127.0.0.1", new HelloFrame(3, WireSamples.ClusterA), client, null, CancellationToken.None).WaitAsync(Deadline));
                    Assert.Equal(ProtocolErrorReason.CertificateRejected, e.Reason);
                    break;
                }
                default:
                {
                    X509Certificate2? certificate = kind switch
                    {
                        "self-signed" => TestCertificates.SelfSignedNodeCertificate(),
                        "expired" => _certificates.ExpiredNodeCertificate(),
                        _ => null,
                    };
                    await using var ssl = new SslStream(network, leaveInnerStreamOpen: true);
                    var options = new SslClientAuthenticationOptions
                    {
                        TargetHost = "127.0.0.1",
                        EnabledSslProtocols = kind == "tls-1.2" ? SslProtocols.Tls12 : SslProtocols.Tls13,
                        RemoteCertificateValidationCallback = (_, _, _, _) => true,
                        LocalCertificateSelectionCallback = (_, _, _, _, _) => certificate!,
                    };
                    try
                    {
                        await ssl.AuthenticateAsClientAsync(options).WaitAsync(Deadline);
                        await ssl.WriteAsync(WireSamples.HelloFrameBytes(3, WireSamples.ClusterA));
                        await ssl.WriteAsync(WireSamples.RaftFrame(Msg(3, 1)));
                        // The node answers no Hello: the connection ends (an alert or a close).
                        var buffer = new byte[64];
                        int got;
                        try { got = await ssl.ReadAsync(buffer).AsTask().WaitAsync(Deadline); }
                        catch (Exception e) when (e is IOException or AuthenticationException) { got = 0; }
                        Assert.Equal(0, got);
                    }
                    catch (Exception e) when (e is AuthenticationException or IOException)
                    {
                        // Refused during the handshake itself (TLS 1.2 is not offered by the node).
                    }
                    break;
                }
            }
        }
        WaitUntil(() => server.Stats.ConnectionsRejected == 1, "the refused connection is counted");
        Assert.Contains(server.LogLines, l => l.Contains($"({reason})") && l.Contains(because));
        Assert.Equal(0, server.Stats.MessagesReceived);
        Assert.Equal(0, server.Stats.ConnectionsAccepted);
        await AssertStillServesAsync(server, 1);
    }

    [Fact]
    public async Task A_dialer_that_completes_TLS_but_never_says_Hello_is_closed_after_the_handshake_timeout()
    {
        await using var server = await StartAsync(1, _certificates.NodeSecurity("server"));
        string folder = _certificates.Node("staller");
        var certificate = X509Certificate2.CreateFromPemFile(Path.Combine(folder, "node.crt"), Path.Combine(folder, "node.key"));
        using var client = new TcpClient();
        await client.ConnectAsync(server.EndPoint);
        await using var ssl = new SslStream(client.GetStream());
        await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "127.0.0.1",
            EnabledSslProtocols = SslProtocols.Tls13,
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
            LocalCertificateSelectionCallback = (_, _, _, _, _) => certificate,
        }).WaitAsync(Deadline);
        var clock = Stopwatch.StartNew();
        int got;
        try { got = await ssl.ReadAsync(new byte[16]).AsTask().WaitAsync(Deadline); }
        catch (IOException) { got = 0; }
        Assert.Equal(0, got);
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(3), Deadline);
        WaitUntil(() => server.Stats.ConnectionsRejected == 1, "the stalled connection is counted");
        Assert.Contains(server.LogLines, l => l.Contains($"({ProtocolErrorReason.HandshakeTimeout})"));
    }

    [Fact]
    public async Task A_dialer_refuses_a_listener_whose_certificate_does_not_name_the_address_dialled_and_sends_it_nothing()
    {
        // The listener's certificate names 10.9.8.7 only; the dialer reaches it at 127.0.0.1.
        await using var elsewhere = await StartAsync(2, TransportSecurity.Tls(_certificates.Node("elsewhere", [IPAddress.Parse("10.9.8.7")]), CertificateRole.Node));
        await using var dialer = await StartAsync(1, _certificates.NodeSecurity("dialer"));
        dialer.Transport.SetPeer(2, elsewhere.EndPoint);
        WaitUntil(() => { dialer.Transport.Send(Msg(1, 2)); return dialer.Stats.ConnectFailures >= 2; }, "the dialer refuses the listener");
        Assert.Contains(dialer.LogLines, l => l.Contains("does not name the host dialled") && l.Contains("10.9.8.7"));
        Assert.Equal(0, elsewhere.Stats.MessagesReceived);
        Assert.Equal(0, dialer.Stats.MessagesSent);
    }

    [Fact]
    public async Task A_listener_with_a_client_certificate_is_refused_by_dialers()
    {
        // Only the engine refuses to build such a transport; a raw TLS listener with a client certificate stands in for an impostor.
        string clientFolder = _certificates.Client("impostor");
        var impostorCertificate = X509Certificate2.CreateFromPemFile(Path.Combine(clientFolder, "client.crt"), Path.Combine(clientFolder, "client.key"));
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var serve = Task.Run(async () =>
        {
            using var socket = await listener.AcceptSocketAsync();
            await using var ssl = new SslStream(new NetworkStream(socket, ownsSocket: false));
            try
            {
                await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = impostorCertificate, EnabledSslProtocols = SslProtocols.Tls13 });
                return await ssl.ReadAsync(new byte[64]);
            }
            catch (Exception e) when (e is AuthenticationException or IOException) { return 0; }
        });
        await using var dialer = await StartAsync(1, _certificates.NodeSecurity("dialer"));
        dialer.Transport.SetPeer(2, (IPEndPoint)listener.LocalEndpoint);
        dialer.Transport.Send(Msg(1, 2));
        Assert.Equal(0, await serve.WaitAsync(Deadline)); // no Hello, no frame reached the impostor
        WaitUntil(() => dialer.Stats.ConnectFailures >= 1, "the dialer gives up on the impostor");
        Assert.Contains(dialer.LogLines, l => l.Contains($"({ProtocolErrorReason.CertificateRejected})") && l.Contains("a client certificate where a node's is needed"));
        Assert.Throws<ArgumentException>(() => new TcpTransport(1, WireSamples.ClusterA, TransportSecurity.Tls(clientFolder, CertificateRole.Client),
            new IPEndPoint(IPAddress.Loopback, 0), _ => { }));
    }

    [Fact]
    public async Task A_TLS_node_refuses_to_dial_a_shared_secret_node_and_the_shared_secret_node_names_the_mismatch()
    {
        await using var plain = await StartAsync(2, TransportSecurity.SharedSecret(WireSamples.SecretA));
        await using var tls = await StartAsync(1, _certificates.NodeSecurity("tls"));
        tls.Transport.SetPeer(2, plain.EndPoint);
        WaitUntil(() => { tls.Transport.Send(Msg(1, 2)); return plain.Stats.ConnectionsRejected >= 1 && tls.Stats.ConnectFailures >= 1; }, "the modes refuse each other");
        Assert.Contains(plain.LogLines, l => l.Contains($"({ProtocolErrorReason.SecurityModeMismatch})") && l.Contains("runs the shared-secret mode"));
        Assert.Equal(0, plain.Stats.MessagesReceived);
    }

    /// <summary>A fresh, well-configured node still reaches <paramref name="server"/>: refusing a peer never stops the listener.</summary>
    private async Task AssertStillServesAsync(Node server, int serverId)
    {
        await using var good = await StartAsync(9, _certificates.NodeSecurity("still-good-" + Guid.NewGuid().ToString("N")[..6]));
        good.Transport.SetPeer(serverId, server.EndPoint);
        Assert.Equal(9, (await SendUntilReceivedAsync(good, 9, server, serverId)).From);
    }

    // ---- what an eavesdropper sees ----

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Node_to_node_traffic_holds_no_plaintext_under_TLS_and_does_in_the_shared_secret_mode(bool tls)
    {
        byte[] secretValue = Encoding.UTF8.GetBytes("value-only-an-eavesdropper-would-love-7c1e");
        await using var a = await StartAsync(1, tls ? _certificates.NodeSecurity("a") : TransportSecurity.SharedSecret(WireSamples.SecretA));
        await using var b = await StartAsync(2, tls ? _certificates.NodeSecurity("b") : TransportSecurity.SharedSecret(WireSamples.SecretA));
        await using var proxy = new RecordingProxy(b.EndPoint);
        a.Transport.SetPeer(2, proxy.EndPoint);
        var received = await SendUntilReceivedAsync(a, 1, b, 2, secretValue);
        Assert.Equal(secretValue, received.Entries[0].Data);
        Assert.True(proxy.RecordedBytes > secretValue.Length);
        Assert.Equal(!tls, proxy.Saw(secretValue));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Client_traffic_holds_no_plaintext_key_or_value_under_TLS_and_does_in_the_shared_secret_mode(bool tls)
    {
        const string key = "customer/4711/credit-card";
        const string value = "4111-1111-1111-1111 exp 12/29 cvv 123";
        var handler = new InMemoryClientHandler(WireSamples.ClusterA);
        await using var node = await StartAsync(1, tls ? _certificates.NodeSecurity("node") : TransportSecurity.SharedSecret(WireSamples.SecretA), handler);
        await using var proxy = new RecordingProxy(node.EndPoint);
        var security = tls ? _certificates.ClientSecurity("alice") : TransportSecurity.SharedSecret(WireSamples.SecretA);
        await using (var remote = await ClusterClient.ConnectAsync([$"127.0.0.1:{proxy.EndPoint.Port}"], security, "eavesdropped"))
        {
            Assert.Equal(WireSamples.ClusterA, remote.Id);
            var written = await remote.WriteAsync([new KeyWrite(key, value)], WriteConcern.Majority, Deadline, CancellationToken.None);
            Assert.Null(written[0].Error);
            Assert.Equal(value, (await remote.GetAsync(key, ReadConsistency.Linearizable, Deadline, CancellationToken.None))!.Value);
        }
        Assert.Contains(node.LogLines, l => l.Contains("accepted a client") && (!tls || l.Contains("CN=alice")));
        Assert.Equal(!tls, proxy.Saw(Encoding.UTF8.GetBytes(value)));
        Assert.Equal(!tls, proxy.Saw(Encoding.UTF8.GetBytes(key)));
    }

    // ---- clients ----

    [Fact]
    public async Task A_client_with_a_node_certificate_is_served_as_nodes_dial_each_other_for_forwarding()
    {
        await using var node = await StartAsync(1, _certificates.NodeSecurity("node"), new InMemoryClientHandler(WireSamples.ClusterA));
        await using var connection = await ClientConnection.ConnectAsync($"127.0.0.1:{node.EndPoint.Port}", _certificates.NodeSecurity("peer"), Guid.Empty, Deadline, CancellationToken.None);
        Assert.Equal(WireSamples.ClusterA, connection.ClusterId);
    }

    public static TheoryData<string, string> RefusedClients() => new()
    {
        { "other-ca", "TLS with the node" },
        { "shared-secret-client", "" },
        { "tls-client-to-shared-secret-node", "does not run TLS" },
        { "localhost-name-not-in-certificate", "does not name the host dialled" },
    };

    [Theory]
    [MemberData(nameof(RefusedClients))]
    public async Task A_client_the_node_does_not_accept_or_that_does_not_accept_the_node_gets_AuthenticationFailed(string kind, string because)
    {
        var handler = new InMemoryClientHandler(WireSamples.ClusterA);
        using var other = new TestCertificates();
        var nodeSecurity = kind switch
        {
            "tls-client-to-shared-secret-node" => TransportSecurity.SharedSecret(WireSamples.SecretA),
            "localhost-name-not-in-certificate" => TransportSecurity.Tls(_certificates.Node("ip-only", [IPAddress.Loopback]), CertificateRole.Node),
            _ => _certificates.NodeSecurity("node"),
        };
        await using var node = await StartAsync(1, nodeSecurity, handler);
        var clientSecurity = kind switch
        {
            "other-ca" => other.ClientSecurity("mallory"),
            "shared-secret-client" => TransportSecurity.SharedSecret(WireSamples.SecretA),
            _ => _certificates.ClientSecurity("alice"),
        };
        string endpoint = kind == "localhost-name-not-in-certificate" ? $"localhost:{node.EndPoint.Port}" : $"127.0.0.1:{node.EndPoint.Port}";
        Exception e = await Assert.ThrowsAnyAsync<Exception>(() => ClientConnection.ConnectAsync(endpoint, clientSecurity, Guid.Empty, Deadline, CancellationToken.None));
        Log($"client sees: {e.GetType().Name}: {e.Message}");
        if (kind == "shared-secret-client")
            Assert.IsType<IOException>(e); // a shared-secret client cannot tell why a listener closed (as before TLS)
        else
        {
            Assert.Equal("AuthenticationFailed", Assert.IsType<AuthenticationFailedException>(e).ErrorId);
            Assert.Contains(because, e.Message);
        }
        if (kind != "localhost-name-not-in-certificate")
            WaitUntil(() => node.Stats.ConnectionsRejected == 1, "the node counts the refusal");
        // The node keeps serving a good client.
        if (nodeSecurity.IsTls)
        {
            await using var good = await ClientConnection.ConnectAsync($"127.0.0.1:{node.EndPoint.Port}", _certificates.ClientSecurity("good"), WireSamples.ClusterA, Deadline, CancellationToken.None);
            Assert.False(good.IsClosed);
        }
    }

    // ---- rotation ----

    [Fact]
    public async Task Replaced_node_certificates_and_a_new_CA_take_effect_for_new_connections_while_open_ones_keep_running()
    {
        string folderA = _certificates.Node("a"), folderB = _certificates.Node("b");
        await using var a = await StartAsync(1, TransportSecurity.Tls(folderA, CertificateRole.Node));
        await using var b = await StartAsync(2, TransportSecurity.Tls(folderB, CertificateRole.Node));
        a.Transport.SetPeer(2, b.EndPoint);
        await SendUntilReceivedAsync(a, 1, b, 2);
        string before = await ProbeListenerThumbprintAsync(b.EndPoint, folderA);

        // 1. A new CA beside the old one: the CA folder's ca.crt becomes a bundle, copied to every node.
        ClusterCertificates.CreateAuthority(_certificates.Authority, TimeSpan.FromDays(30), rotate: true);
        Assert.Equal(2, TransportSecurity.LoadAuthorities(Path.Combine(_certificates.Authority, "ca.crt")).Count);
        foreach (var folder in new[] { folderA, folderB })
            File.Copy(Path.Combine(_certificates.Authority, "ca.crt"), Path.Combine(folder, "ca.crt"), overwrite: true);

        // 2. A half-done replacement (a new node.crt whose key is not there yet) is not used: b keeps its certificate.
        string staging = _certificates.Folder("staging");
        ClusterCertificates.CreateNode(staging, authorityFolder: _certificates.Authority);
        File.Copy(Path.Combine(staging, "node.crt"), Path.Combine(folderB, "node.crt"), overwrite: true);
        Assert.Equal(before, await ProbeListenerThumbprintAsync(b.EndPoint, folderA));
        Assert.Contains(b.LogLines, l => l.Contains("cannot be used, so the previous ones stay in use"));

        // 3. The key arrives: the next connection gets the new certificate, signed by the new CA.
        File.Copy(Path.Combine(staging, "node.key"), Path.Combine(folderB, "node.key"), overwrite: true);
        string after = await ProbeListenerThumbprintAsync(b.EndPoint, folderA);
        var issued = X509Certificate2.CreateFromPem(File.ReadAllText(Path.Combine(staging, "node.crt")));
        Assert.Equal(issued.Thumbprint, after);
        Assert.NotEqual(before, after);
        Assert.Contains(b.LogLines, l => l.Contains("certificates reloaded"));

        // 4. The connection a -> b opened before all this is still the one in use, and still delivers.
        long opened = a.Stats.ConnectionsOpened;
        await SendUntilReceivedAsync(a, 1, b, 2);
        Assert.Equal(opened, a.Stats.ConnectionsOpened);

        // 5. New connections both ways work with the mixed certificates (a: old CA, b: new CA), and a
        //    node that knows only the new CA talks to b.
        b.Transport.SetPeer(1, a.EndPoint);
        await SendUntilReceivedAsync(b, 2, a, 1);
        string onlyNew = _certificates.Folder("only-new");
        ClusterCertificates.CreateNode(onlyNew, authorityFolder: _certificates.Authority);
        File.WriteAllText(Path.Combine(onlyNew, "ca.crt"), X509Certificate2.CreateFromPem(File.ReadAllText(Path.Combine(_certificates.Authority, "ca.crt"))).ExportCertificatePem());
        await using var c = await StartAsync(3, TransportSecurity.Tls(onlyNew, CertificateRole.Node));
        c.Transport.SetPeer(2, b.EndPoint);
        await SendUntilReceivedAsync(c, 3, b, 2);
        Assert.Equal(0, b.Stats.ConnectionsRejected);
    }

    /// <summary>Dials <paramref name="endPoint"/> with TLS (as a node of <paramref name="folder"/>) and returns the thumbprint of the certificate it presented.</summary>
    private static async Task<string> ProbeListenerThumbprintAsync(IPEndPoint endPoint, string folder)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endPoint);
        var security = TransportSecurity.Tls(folder, CertificateRole.Node);
        var (stream, _) = await Handshake.DialSecuredAsync(socket, "127.0.0.1", new HelloFrame(99, WireSamples.ClusterA), security, null, CancellationToken.None)
            .WaitAsync(Deadline);
        await using (stream)
            return ((SslStream)stream).RemoteCertificate is X509Certificate2 presented ? presented.Thumbprint : throw new Xunit.Sdk.XunitException("no certificate");
    }
}
