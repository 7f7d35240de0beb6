using System.Buffers.Binary;

namespace Replication.Engine.Transport;

/// <summary>
/// The first frame on every node-to-node connection, sent by the dialer: the protocol
/// version it speaks, its node id and its cluster id. The listener drops the connection
/// unless the version is <see cref="FrameCodec.ProtocolVersion"/> and the cluster id is its
/// own, and it binds the connection to <see cref="NodeId"/> (Raft messages claiming another
/// sender are dropped).
/// <para>
/// Extending to authentication: the listener's side of the handshake is a step of its own
/// (TcpTransport.Inbound.cs) that runs before any Raft frame is accepted. An HMAC challenge
/// adds frame types (listener sends a nonce, dialer answers with HMAC(secret, nonce, hello))
/// and one more step there, under a new protocol version; the Hello itself need not change.
/// </para>
/// Payload (21 bytes, little-endian): <c>[u8 version][i32 node id][16 bytes cluster id]</c>,
/// the cluster id in <see cref="Guid.TryWriteBytes(Span{byte})"/> layout.
/// </summary>
public sealed record HelloFrame(byte ProtocolVersion, int NodeId, Guid ClusterId)
{
    /// <summary>Size of the encoded payload; a Hello of any other size is malformed.</summary>
    public const int EncodedSize = 1 + 4 + 16;

    /// <summary>A Hello for this build's protocol version.</summary>
    public HelloFrame(int nodeId, Guid clusterId) : this(FrameCodec.ProtocolVersion, nodeId, clusterId) { }

    /// <summary>Writes the payload into the first <see cref="EncodedSize"/> bytes of <paramref name="destination"/>.</summary>
    public void Encode(Span<byte> destination)
    {
        if (destination.Length < EncodedSize)
            throw new ArgumentException("Destination is shorter than a Hello payload.", nameof(destination));
        destination[0] = ProtocolVersion;
        BinaryPrimitives.WriteInt32LittleEndian(destination[1..], NodeId);
        ClusterId.TryWriteBytes(destination[5..]);
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
        return new HelloFrame(payload[0], BinaryPrimitives.ReadInt32LittleEndian(payload[1..]), new Guid(payload.Slice(5, 16)));
    }
}
