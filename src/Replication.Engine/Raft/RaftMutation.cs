namespace Replication.Engine.Raft;

/// <summary>
/// Deliberate bugs for fault injection, like SQLite's test VFS: the deterministic simulator
/// (tests/Replication.Simulation) switches one on to prove that its checks catch a broken core
/// ("mutants"). Internal and test-only: production code never sets it, and <see cref="None"/>
/// leaves the core exactly as specified. Each flag is one well-known Raft mistake.
/// </summary>
[Flags]
internal enum RaftMutation
{
    None = 0,
    /// <summary>Commit by counting replicas of an entry from an older term (no Figure 8 rule, paper 5.4.2).</summary>
    CommitOldTermByCounting = 1,
    /// <summary>A follower keeps its conflicting entries instead of truncating them (paper 5.3, step 3 of AppendEntries).</summary>
    FollowerKeepsConflicts = 2,
    /// <summary>A follower accepts an Append from an older term (a stale leader's, delivered late) instead of ignoring it (paper 5.1, Figure 2: "reply false if term &lt; currentTerm").</summary>
    StaleAppendAccepted = 4,
    /// <summary>The leader accepts a membership change while an earlier one is still uncommitted (thesis 4.1: one at a time).</summary>
    ConcurrentConfChange = 8,
    /// <summary>A replica that knows no configuration yet (a joining one, empty) grants votes like any other (see HandleVoteRequest).</summary>
    EmptyReplicaVotes = 16,
    /// <summary>A quiesced leader trusts its lease for as long as it stays quiesced, as if node liveness renewed it (RaftNode.Quiesce.cs).</summary>
    QuiescedLeaseHeld = 32,
}
