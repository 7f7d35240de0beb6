using System.Buffers.Binary;

namespace Replication.Engine.Transport;

/// <summary>
/// The first frame on every connection, sent by the dialer: the protocol version it speaks, its
/// node id (0 for a client), its cluster id (a client that does not know it yet sends
/// <see cref="Guid.Empty"/>) and a fresh random nonce. The listener drops the connection unless the
/// version is <see cref="FrameCodec.ProtocolVersion"/> and the cluster id is its own (or empty from
/// a client), then answers with a <see cref="ChallengeFrame"/>; the dialer must answer that with a
/// valid proof before anything else is accepted (docs/wire-protocol.md, "Authentication"). In the TLS
/// mode the Hello travels inside TLS and the listener answers with a Hello of its own (its node id and
/// cluster id; the nonce is unused), since the certificates have authenticated both sides. The
/// connection is bound to <see cref="NodeId"/> (Raft messages claiming another sender are dropped).
/// Payload (37 bytes, little-endian): <c>[u8 version][i32 node id][16 bytes cluster id][16 bytes nonce]</c>,
/// the cluster id in <see cref="Guid.TryWriteBytes(Span{byte})"/> layout.
/// </summary>
public sealed record HelloFrame(byte ProtocolVersion, int NodeId, Guid ClusterId, UInt128 Nonce)
{
    /// <summary>Size of the encoded payload; a Hello of any other size is malformed.</summary>
    public const int EncodedSize = 1 + 4 + 16 + 16;

    /// <summary>The node id a client announces: no Raft node has it.</summary>
    public const int ClientNodeId = 0;

    /// <summary>A Hello for this build's protocol version with a fresh random nonce.</summary>
    public HelloFrame(int nodeId, Guid clusterId) : this(FrameCodec.ProtocolVersion, nodeId, clusterId, HandshakeNonce.Create()) { }

    /// <summary>True for a client's Hello (node id 0).</summary>
    public bool IsClient => NodeId == ClientNodeId;

    /// <summary>Writes the payload into the first <see cref="EncodedSize"/> bytes of <paramref name="destination"/>.</summary>
    public void Encode(Span<byte> destination)
    {
        if (destination.Length < EncodedSize)
            throw new ArgumentException("Destination is shorter than a Hello payload.", nameof(destination));
        destination[0] = ProtocolVersion;
        BinaryPrimitives.WriteInt32LittleEndian(destination[1..], NodeId);
        ClusterId.TryWriteBytes(destination[5..]);
        HandshakeNonce.Write(destination[21..], Nonce);
    }

    /// <summary>The payload as a new array.</summary>
    public byte[] Encode()
    {
        var payload = new byte[EncodedSize];
        Encode(payload);
        return payload;
    }

    /// <summary>
    /// Parses a Hello payload. Only the shape is checked here; whether the version and cluster
    /// are acceptable is the listener's decision.
    /// </summary>
    /// <exception cref="ProtocolException">The payload is not exactly <see cref="EncodedSize"/> bytes.</exception>
    public static HelloFrame Decode(ReadOnlySpan<byte> payload)
    {
        if (payload.Length != EncodedSize)
            throw new ProtocolException(ProtocolErrorReason.MalformedPayload, $"Hello payload has {payload.Length} bytes, expected {EncodedSize}.");
        return new HelloFrame(payload[0], BinaryPrimitives.ReadInt32LittleEndian(payload[1..]), new Guid(payload.Slice(5, 16)), HandshakeNonce.Read(payload[21..]));
    }
}
