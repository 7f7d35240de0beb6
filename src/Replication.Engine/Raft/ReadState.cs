namespace Replication.Engine.Raft;

/// <summary>
/// A confirmed ReadIndex (thesis 6.4): once the state machine has applied <see cref="Index"/>,
/// a read tagged <see cref="Context"/> may be served and is linearizable.
/// </summary>
public readonly record struct ReadState(long Context, long Index);
