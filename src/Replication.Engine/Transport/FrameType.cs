namespace Replication.Engine.Transport;

/// <summary>
/// Kind of a wire frame (the byte after the version in the frame header; see
/// docs/wire-protocol.md). Sent on the wire: values are explicit and append-only, and a
/// receiver rejects any value it does not know (<see cref="ProtocolErrorReason.UnknownFrameType"/>).
/// </summary>
public enum FrameType : byte
{
    /// <summary>First frame a dialer sends on every connection: who it is and which cluster it belongs to (<see cref="HelloFrame"/>).
    /// In the TLS mode the listener answers with a Hello of its own (its node id and cluster id) instead of a Challenge.</summary>
    Hello = 1,

    /// <summary>A batch of Raft messages, possibly of several groups, for the receiving node (<see cref="RaftMessageCodec"/>).</summary>
    Raft = 2,

    /// <summary>The listener's answer to a Hello in the shared-secret mode: its nonce, cluster id and proof of the key (<see cref="ChallengeFrame"/>).</summary>
    Challenge = 3,

    /// <summary>The dialer's proof of the key for this connection (32 bytes, <see cref="ClusterKey.DialerProof"/>).</summary>
    Proof = 4,

    /// <summary>A client request (client to node), after the handshake (Client/ClientCodec.cs).</summary>
    ClientRequest = 5,

    /// <summary>A response to a client request (node to client), matched by correlation id.</summary>
    ClientResponse = 6,
}
