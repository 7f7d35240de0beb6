namespace Replication.Engine.Transport;

/// <summary>
/// The dialer's side of the authenticated handshake (docs/wire-protocol.md, "Authentication"),
/// shared by node-to-node connections (<see cref="OutboundConnection"/>) and clients:
/// send Hello; read the listener's Challenge; verify the listener's proof BEFORE sending anything
/// else; send the dialer's proof. The listener's side is TcpTransport.HandshakeAsync.
/// Stateless and thread-safe.
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
            ?? throw new IOException("The listener closed the connection during the handshake (it rejected our Hello).");
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
}
