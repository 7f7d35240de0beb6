namespace Replication.Engine.Transport;

/// <summary>
/// Kind of a wire frame (the byte after the version in the frame header; see
/// docs/wire-protocol.md). Sent on the wire: values are explicit and append-only, and a
/// receiver rejects any value it does not know (<see cref="ProtocolErrorReason.UnknownFrameType"/>).
/// Client request/response frames will take the next values.
/// </summary>
public enum FrameType : byte
{
    /// <summary>First frame a dialer sends on every connection: who it is and which cluster it belongs to (<see cref="HelloFrame"/>).</summary>
    Hello = 1,

    /// <summary>A batch of Raft messages, possibly of several groups, for the receiving node (<see cref="RaftMessageCodec"/>).</summary>
    Raft = 2,
}
