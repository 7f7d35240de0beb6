namespace Replication.Engine.Raft;

/// <summary>Role of a Raft node in its group.</summary>
public enum RaftRole
{
    Follower = 0,
    /// <summary>Running a pre-vote (thesis 9.6): asking whether it could win, without raising its term.</summary>
    PreCandidate = 1,
    Candidate = 2,
    Leader = 3,
}
