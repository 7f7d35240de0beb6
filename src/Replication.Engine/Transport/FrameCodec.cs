using System.Buffers.Binary;

namespace Replication.Engine.Transport;

/// <summary>
/// The frame layer of the node-to-node protocol (docs/wire-protocol.md): every frame is
/// <c>[u32 payload length LE][u8 version][u8 type][u32 CRC-32C of payload LE]</c> then the payload.
/// The header is validated as a whole before any payload buffer is allocated, so a hostile
/// length can cost at most <see cref="MaxPayloadSize"/> bytes, and less where the caller passes
/// a smaller limit (the listener allows only Hello- and proof-sized frames before the handshake completes).
/// Stateless and thread-safe.
/// </summary>
public static class FrameCodec
{
    /// <summary>Size of the fixed header.</summary>
    public const int HeaderSize = 10;

    /// <summary>The only protocol version this build speaks (2: authenticated handshake and client frames). A peer with another version is rejected, not negotiated with.</summary>
    public const byte ProtocolVersion = 2;

    /// <summary>
    /// Largest payload accepted or produced (16 MiB). Large enough for a generous batch of
    /// appends; snapshots will travel as a sequence of chunks well below it.
    /// </summary>
    public const int MaxPayloadSize = 16 * 1024 * 1024;

    /// <summary>
    /// Writes the header for <paramref name="payload"/> into the first <see cref="HeaderSize"/>
    /// bytes of <paramref name="destination"/>. The payload must not exceed <see cref="MaxPayloadSize"/>
    /// (a sender bug, hence an <see cref="ArgumentException"/>, not a <see cref="ProtocolException"/>).
    /// </summary>
    public static void WriteHeader(Span<byte> destination, FrameType type, ReadOnlySpan<byte> payload)
    {
        if (payload.Length > MaxPayloadSize)
            throw new ArgumentException($"Payload of {payload.Length} bytes exceeds the {MaxPayloadSize}-byte frame limit.", nameof(payload));
        if (destination.Length < HeaderSize)
            throw new ArgumentException("Destination is shorter than a frame header.", nameof(destination));
        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)payload.Length);
        destination[4] = ProtocolVersion;
        destination[5] = (byte)type;
        BinaryPrimitives.WriteUInt32LittleEndian(destination[6..], Crc32C.Compute(payload));
    }

    /// <summary>
    /// <see cref="WriteHeader(Span{byte}, FrameType, ReadOnlySpan{byte})"/> for a payload that is not in one span: its length
    /// and its CRC-32C (<see cref="Crc32C"/>, appended over its pieces in order) given by the caller (FrameWriter's gathered
    /// write of a snapshot chunk).
    /// </summary>
    internal static void WriteHeader(Span<byte> destination, FrameType type, int payloadLength, uint payloadCrc)
    {
        if ((uint)payloadLength > MaxPayloadSize)
            throw new ArgumentException($"Payload of {payloadLength} bytes exceeds the {MaxPayloadSize}-byte frame limit.", nameof(payloadLength));
        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)payloadLength);
        destination[4] = ProtocolVersion;
        destination[5] = (byte)type;
        BinaryPrimitives.WriteUInt32LittleEndian(destination[6..], payloadCrc);
    }

    /// <summary>A complete frame (header and payload) in a new array. For tests and one-off frames; the transport writes into pooled buffers instead.</summary>
    public static byte[] Encode(FrameType type, ReadOnlySpan<byte> payload)
    {
        var frame = new byte[HeaderSize + payload.Length];
        WriteHeader(frame, type, payload);
        payload.CopyTo(frame.AsSpan(HeaderSize));
        return frame;
    }

    /// <summary>
    /// Parses and validates a header. Checks, in order: version, type, length against
    /// <paramref name="maxPayloadSize"/> (clamped to <see cref="MaxPayloadSize"/>).
    /// </summary>
    /// <exception cref="ProtocolException">Header shorter than <see cref="HeaderSize"/>, or any check fails.</exception>
    public static FrameHeader ParseHeader(ReadOnlySpan<byte> header, int maxPayloadSize = MaxPayloadSize)
    {
        if (header.Length < HeaderSize)
            throw new ProtocolException(ProtocolErrorReason.Truncated, $"Frame header has {header.Length} of {HeaderSize} bytes.");
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(header);
        byte version = header[4];
        byte type = header[5];
        uint crc = BinaryPrimitives.ReadUInt32LittleEndian(header[6..]);
        if (version != ProtocolVersion)
            throw new ProtocolException(ProtocolErrorReason.UnsupportedVersion, $"Frame version {version}; this node speaks {ProtocolVersion}.");
        if (!IsKnown(type))
            throw new ProtocolException(ProtocolErrorReason.UnknownFrameType, $"Unknown frame type {type}.");
        int limit = Math.Min(maxPayloadSize, MaxPayloadSize);
        if (length > (uint)limit)
            throw new ProtocolException(ProtocolErrorReason.FrameTooLarge, $"Frame payload of {length} bytes exceeds the {limit}-byte limit.");
        return new FrameHeader((int)length, (FrameType)type, crc);
    }

    /// <summary>Checks <paramref name="payload"/> against the header's checksum and length.</summary>
    /// <exception cref="ProtocolException">Length or CRC-32C differ.</exception>
    public static void VerifyPayload(in FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (payload.Length != header.PayloadLength)
            throw new ProtocolException(ProtocolErrorReason.Truncated, $"Frame payload has {payload.Length} of {header.PayloadLength} bytes.");
        uint actual = Crc32C.Compute(payload);
        if (actual != header.Checksum)
            throw new ProtocolException(ProtocolErrorReason.ChecksumMismatch, $"Payload CRC-32C is 0x{actual:X8}, header says 0x{header.Checksum:X8}.");
    }

    // Explicit list rather than Enum.IsDefined: cheap, and a new FrameType must be added here on purpose.
    private static bool IsKnown(byte type) => type is (byte)FrameType.Hello or (byte)FrameType.Raft or (byte)FrameType.Challenge
        or (byte)FrameType.Proof or (byte)FrameType.ClientRequest or (byte)FrameType.ClientResponse;
}
