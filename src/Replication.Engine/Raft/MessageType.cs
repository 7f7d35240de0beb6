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
}
