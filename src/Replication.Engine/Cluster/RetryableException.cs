namespace Replication.Engine.Cluster;

/// <summary>
/// Internal signal from a node to the router: this request cannot be served here, but may succeed
/// elsewhere or later (not leader, node stopping, entry lost to a leader change). Never shown to
/// users: the router retries until its deadline, then reports <see cref="QuorumUnavailableException"/>.
/// <see cref="LeaderHint"/> is the leader this node believes in (0 = unknown). <see cref="Ambiguous"/>: a
/// proposal was already in the log when it failed (the node stopped or dropped the group), so it may still
/// commit; a write must then not be proposed again but reported as of unknown outcome.
/// </summary>
internal sealed class RetryableException(string reason, int leaderHint = 0, bool ambiguous = false) : Exception(reason)
{
    public int LeaderHint { get; } = leaderHint;
    public bool Ambiguous { get; } = ambiguous;
}
