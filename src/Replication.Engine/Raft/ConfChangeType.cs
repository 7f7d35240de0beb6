namespace Replication.Engine.Raft;

/// <summary>Kind of a single-server membership change (thesis 4.1–4.3). Persisted inside ConfChange
/// entries and sent on the wire: values are explicit and append-only.</summary>
public enum ConfChangeType : byte
{
    /// <summary>Adds a voting member (a node that is neither voter nor learner).</summary>
    AddVoter = 1,
    /// <summary>Adds a non-voting member that receives the log but never counts in a quorum.</summary>
    AddLearner = 2,
    /// <summary>Removes a voter or a learner (possibly the leader itself, thesis 4.2.2).</summary>
    RemoveNode = 3,
    /// <summary>Turns a learner into a voter.</summary>
    PromoteLearner = 4,
}
