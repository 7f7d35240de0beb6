namespace Replication.Engine.Raft;

/// <summary>Raft message kinds. Sent on the wire: values are append-only.</summary>
public enum MessageType : byte
{
    /// <summary>RequestVote (paper 5.2).</summary>
    Vote = 1,
    VoteResponse = 2,
    /// <summary>Pre-vote: a trial election that does not bump terms (thesis 9.6).</summary>
    PreVote = 3,
    PreVoteResponse = 4,
    /// <summary>AppendEntries carrying entries (paper 5.3).</summary>
    Append = 5,
    AppendResponse = 6,
    /// <summary>AppendEntries without entries, carrying commit and a ReadIndex context.</summary>
    Heartbeat = 7,
    HeartbeatResponse = 8,
    /// <summary>InstallSnapshot (paper 7).</summary>
    Snapshot = 9,
    /// <summary>Leader transfer: the receiver starts an election at once (thesis 3.10).</summary>
    TimeoutNow = 10,

    /// <summary>
    /// Host-level, never stepped into a core: one chunk of a snapshot's data streamed by the
    /// leader's host after its core emitted a <see cref="Snapshot"/> message. Index/LogTerm =
    /// snapshot index/term, Context = chunk sequence number from 0, Commit = 1 on the last chunk
    /// (which also carries the membership and, in RejectHint, the CRC-32C of all chunks), and the
    /// chunk's bytes as the data of the single entry in Entries.
    /// </summary>
    SnapshotChunk = 11,
    /// <summary>Host-level: the receiver's answer to a <see cref="SnapshotChunk"/> (Context = its sequence number; Reject = transfer refused).</summary>
    SnapshotAck = 12,
    /// <summary>The leader of an idle, settled group stops heartbeating (RaftNode.Quiesce.cs): Index/LogTerm = its last
    /// entry, Commit = its commit index.</summary>
    Quiesce = 13,
    /// <summary>
    /// Host-level, never stepped into a core: one node's liveness signal to a peer node (not per group; Group 0, From and
    /// To are node ids), sent at a slower period than heartbeats. The receiver feeds it to its cores with
    /// <see cref="RaftNode.HeardFrom"/> for every member the sender hosts (RaftNode.Quiesce.cs).
    /// </summary>
    Liveness = 14,
}
