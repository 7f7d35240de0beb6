namespace Replication.Engine.Transport;

/// <summary>
/// Why a peer's input was rejected. Appears in logs and in <see cref="ProtocolException.Reason"/>;
/// tests assert it, so names are stable.
/// </summary>
public enum ProtocolErrorReason
{
    /// <summary>The frame header's version byte is not <see cref="FrameCodec.ProtocolVersion"/> (or a Hello names another version).</summary>
    UnsupportedVersion = 1,

    /// <summary>The frame header's type byte is not a <see cref="FrameType"/> this node knows.</summary>
    UnknownFrameType = 2,

    /// <summary>The declared payload length exceeds the limit in force (checked before anything is allocated).</summary>
    FrameTooLarge = 3,

    /// <summary>The payload's CRC-32C differs from the header's.</summary>
    ChecksumMismatch = 4,

    /// <summary>The stream ended inside a frame (header or payload).</summary>
    Truncated = 5,

    /// <summary>The payload passed the checksum but does not parse: a count or length beyond the payload, an unknown enum value, trailing bytes.</summary>
    MalformedPayload = 6,

    /// <summary>A well-formed frame arrived where the protocol does not allow it (e.g. a Raft frame before the Hello, a second Hello).</summary>
    UnexpectedFrame = 7,

    /// <summary>The dialer's Hello names a different cluster id.</summary>
    ClusterMismatch = 8,

    /// <summary>The dialer did not complete the handshake in time.</summary>
    HandshakeTimeout = 9,

    /// <summary>A handshake proof did not verify: the peer does not know the cluster secret, or replayed a proof made for another connection.</summary>
    AuthenticationFailed = 10,

    /// <summary>TLS mode: the TLS handshake did not complete (no common protocol version or cipher, a TLS alert, or the peer closed during it).</summary>
    TlsHandshakeFailed = 11,

    /// <summary>TLS mode: the peer's certificate was missing or refused: not signed by a CA in ca.crt, expired or not yet valid, not naming the host dialled, without a role, or a client certificate speaking for a node.</summary>
    CertificateRejected = 12,

    /// <summary>One side runs TLS and the other the shared-secret mode (a TLS handshake where frames were expected, or the reverse).</summary>
    SecurityModeMismatch = 13,
}
