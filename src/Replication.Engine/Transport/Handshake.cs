using System.Net.Sockets;
using Replication.Engine.Security;

namespace Replication.Engine.Transport;

/// <summary>
/// The dialer's side of the connection handshake (docs/wire-protocol.md), shared by node-to-node
/// connections (<see cref="OutboundConnection"/>) and clients (Client/ClientConnection.cs).
/// <see cref="DialSecuredAsync"/> runs the mode a <see cref="TransportSecurity"/> asks for:
/// <list type="bullet">
/// <item>shared secret (<see cref="DialAsync"/>): send Hello; read the listener's Challenge; verify
/// the listener's proof BEFORE sending anything else; send the dialer's proof;</item>
/// <item>TLS: the TLS 1.3 handshake (<see cref="TlsChannel"/>), then, inside it, send Hello and read
/// the listener's Hello (its node id and cluster id), which also tells the dialer that the listener
/// accepted its certificate and Hello.</item>
/// </list>
/// The listener's side is TcpTransport.Inbound. Stateless and thread-safe.
/// </summary>
public static class Handshake
{
    /// <summary>How long the whole handshake may take on either side.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Runs the dialer's side on a freshly connected stream. <paramref name="keyFor"/> gives the key
    /// for the cluster id the listener names (null = not a cluster this dialer may talk to, which is
    /// a <see cref="ProtocolErrorReason.ClusterMismatch"/>). Returns the listener's challenge (its
    /// cluster id) once both sides are proven; the connection is then ready for frames.
    /// </summary>
    /// <exception cref="ProtocolException">The listener's answer is malformed, names another cluster, or its
    /// proof is wrong (<see cref="ProtocolErrorReason.AuthenticationFailed"/>: it does not know the secret, or we do not).</exception>
    /// <exception cref="IOException">The connection failed or closed (a listener closes when it rejects our Hello).</exception>
    public static async Task<ChallengeFrame> DialAsync(Stream stream, FrameReader reader, HelloFrame hello, Func<Guid, ClusterKey?> keyFor, CancellationToken cancellationToken)
    {
        var writer = new FrameWriter(stream);
        byte[] helloPayload = hello.Encode();
        await writer.WriteAsync(FrameType.Hello, helloPayload, cancellationToken).ConfigureAwait(false);
        var frame = await reader.ReadAsync(ChallengeFrame.EncodedSize, FrameType.Challenge, cancellationToken).ConfigureAwait(false)
            ?? throw new IOException("The listener closed the connection during the handshake (it rejected our Hello: another cluster, or it runs TLS and this side the shared-secret mode).");
        var challenge = ChallengeFrame.Decode(frame.Payload.Span);
        if (hello.ClusterId != Guid.Empty && challenge.ClusterId != hello.ClusterId)
            throw new ProtocolException(ProtocolErrorReason.ClusterMismatch, $"The listener belongs to cluster {challenge.ClusterId}, not {hello.ClusterId}.");
        var key = keyFor(challenge.ClusterId)
            ?? throw new ProtocolException(ProtocolErrorReason.ClusterMismatch, $"No key for cluster {challenge.ClusterId}.");
        if (!key.VerifyListenerProof(helloPayload, challenge.Nonce, challenge.Proof))
            throw new ProtocolException(ProtocolErrorReason.AuthenticationFailed, "The listener's proof does not verify: the two sides do not share the cluster secret.");
        await writer.WriteAsync(FrameType.Proof, key.DialerProof(helloPayload, challenge.Nonce), cancellationToken).ConfigureAwait(false);
        return challenge;
    }

    /// <summary>
    /// Runs the dialer's side of the handshake in <paramref name="security"/>'s mode on a freshly
    /// connected socket. <paramref name="targetHost"/> is the host as dialled (a DNS name or an IP
    /// address): in TLS mode the listener's certificate must name it. <paramref name="hello"/> names
    /// this side (node id 0 for a client) and the cluster it expects (empty: any, learnt from the
    /// answer). Returns the stream to use from now on (the socket's, or the TLS stream over it; it
    /// owns the socket) and the listener's cluster id. On failure the socket is left to the caller.
    /// </summary>
    /// <exception cref="ProtocolException">The listener is not acceptable or does not accept us: <see cref="ProtocolErrorReason.AuthenticationFailed"/>
    /// (shared secret), <see cref="ProtocolErrorReason.CertificateRejected"/> or <see cref="ProtocolErrorReason.TlsHandshakeFailed"/> (TLS),
    /// <see cref="ProtocolErrorReason.ClusterMismatch"/>, or a malformed answer.</exception>
    /// <exception cref="IOException">The connection failed or was closed (in shared-secret mode a listener closes when it rejects our Hello).</exception>
    public static Task<(Stream Stream, Guid ClusterId)> DialSecuredAsync(Socket socket, string targetHost, HelloFrame hello, TransportSecurity security,
        Action<string>? log, CancellationToken cancellationToken) =>
        DialSecuredAsync(new NetworkStream(socket, ownsSocket: true), targetHost, hello, security, log, cancellationToken);

    /// <summary>The same, over the stream of a freshly connected socket (that owns the socket); see the <see cref="Socket"/> overload.</summary>
    internal static async Task<(Stream Stream, Guid ClusterId)> DialSecuredAsync(Stream network, string targetHost, HelloFrame hello, TransportSecurity security,
        Action<string>? log, CancellationToken cancellationToken)
    {
        if (security.Certificates is not { } certificates)
        {
            using var reader = new FrameReader(network, readAhead: false); // the stream is read by a new reader afterwards
            var challenge = await DialAsync(network, reader, hello,
                id => hello.ClusterId == Guid.Empty || id == hello.ClusterId ? security.KeyFor(id) : null, cancellationToken).ConfigureAwait(false);
            return (network, challenge.ClusterId);
        }

        var tls = await TlsChannel.AuthenticateAsDialerAsync(network, targetHost, certificates.Current(log), cancellationToken).ConfigureAwait(false);
        try
        {
            using var reader = new FrameReader(tls, readAhead: false); // the stream is read by a new reader afterwards
            await new FrameWriter(tls).WriteAsync(FrameType.Hello, hello.Encode(), cancellationToken).ConfigureAwait(false);
            (FrameType Type, ReadOnlyMemory<byte> Payload)? frame;
            try
            {
                frame = await reader.ReadAsync(HelloFrame.EncodedSize, FrameType.Hello, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e) when (e.InnerException is System.Security.Authentication.AuthenticationException or System.ComponentModel.Win32Exception)
            {
                // TLS 1.3: the listener checks our certificate after our side of the handshake has
                // completed, so its refusal (an alert) surfaces on the first read.
                throw new ProtocolException(ProtocolErrorReason.CertificateRejected, $"The listener at {targetHost} refused this side's certificate: {e.InnerException.Message}");
            }
            if (frame is null)
                throw new ProtocolException(ProtocolErrorReason.CertificateRejected,
                    $"The listener at {targetHost} closed the connection after the TLS handshake without answering our Hello: it refused this side's certificate (or, for a node, it is not a node's) or our Hello (another cluster); its log says which.");
            var answer = HelloFrame.Decode(frame.Value.Payload.Span);
            if (answer.ProtocolVersion != FrameCodec.ProtocolVersion)
                throw new ProtocolException(ProtocolErrorReason.UnsupportedVersion, $"The listener speaks protocol {answer.ProtocolVersion}; this side speaks {FrameCodec.ProtocolVersion}.");
            if (answer.NodeId <= 0)
                throw new ProtocolException(ProtocolErrorReason.MalformedPayload, $"The listener's Hello names node id {answer.NodeId}; a listener is a node.");
            if (hello.ClusterId != Guid.Empty && answer.ClusterId != hello.ClusterId)
                throw new ProtocolException(ProtocolErrorReason.ClusterMismatch, $"The listener belongs to cluster {answer.ClusterId}, not {hello.ClusterId}.");
            return (tls, answer.ClusterId);
        }
        catch
        {
            await tls.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }
}
