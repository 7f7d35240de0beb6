namespace Replication.Engine.Cluster;

/// <summary>
/// Internal signal from a node to the router: this request cannot be served here, but may succeed
/// elsewhere or later (not leader, node stopping, entry lost to a leader change). Never shown to
/// users: the router retries until its deadline, then reports <see cref="QuorumUnavailableException"/>.
/// <see cref="LeaderHint"/> is the leader this node believes in (0 = unknown).
/// </summary>
internal sealed class RetryableException(string reason, int leaderHint = 0) : Exception(reason)
{
    public int LeaderHint { get; } = leaderHint;
}
