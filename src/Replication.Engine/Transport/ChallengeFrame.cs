namespace Replication.Engine.Transport;

/// <summary>
/// The listener's answer to a Hello (protocol version 2): its own nonce, its cluster id (so a
/// client that connected without knowing the id can derive the key), and its proof
/// <see cref="ClusterKey.ListenerProof"/> over the dialer's Hello and this nonce. The dialer
/// verifies the proof before it sends anything else.
/// Payload (64 bytes): <c>[16 bytes listener nonce][16 bytes cluster id][32 bytes proof]</c>.
/// </summary>
public sealed record ChallengeFrame(UInt128 Nonce, Guid ClusterId, byte[] Proof)
{
    /// <summary>Size of the encoded payload; any other size is malformed.</summary>
    public const int EncodedSize = 16 + 16 + ClusterKey.ProofLength;

    public byte[] Encode()
    {
        if (Proof.Length != ClusterKey.ProofLength) throw new ArgumentException("A proof is 32 bytes.");
        var payload = new byte[EncodedSize];
        HandshakeNonce.Write(payload, Nonce);
        ClusterId.TryWriteBytes(payload.AsSpan(16));
        Proof.CopyTo(payload, 32);
        return payload;
    }

    /// <exception cref="ProtocolException">The payload is not exactly <see cref="EncodedSize"/> bytes.</exception>
    public static ChallengeFrame Decode(ReadOnlySpan<byte> payload)
    {
        if (payload.Length != EncodedSize)
            throw new ProtocolException(ProtocolErrorReason.MalformedPayload, $"Challenge payload has {payload.Length} bytes, expected {EncodedSize}.");
        return new ChallengeFrame(HandshakeNonce.Read(payload), new Guid(payload.Slice(16, 16)), payload[32..].ToArray());
    }
}
