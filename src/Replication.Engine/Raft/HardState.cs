namespace Replication.Engine.Raft;

/// <summary>
/// The state a Raft node must persist before it answers any message (Raft paper, Figure 2):
/// the current term and the vote cast in it, plus the commit index (persisting it lets a
/// restarted node re-apply committed entries without waiting for a leader).
/// <see cref="Vote"/> is 0 when no vote was cast in <see cref="Term"/>.
/// </summary>
public readonly record struct HardState(long Term, int Vote, long Commit)
{
    public static readonly HardState Empty = new(0, 0, 0);
}
