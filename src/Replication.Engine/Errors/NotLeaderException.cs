namespace Replication.Engine;

/// <summary>
/// Node to node: a forwarded request reached a node that cannot serve it (it does not lead the
/// shard, or no longer). Nothing was done, so the forwarding node retries against
/// <see cref="LeaderHint"/> (0 = unknown). The hint travels at the end of the message as
/// "[leader N]" (the error frame has no other field for it). Not shown to users: the forwarding
/// node retries until its deadline.
/// </summary>
public sealed class NotLeaderException(int group, int nodeId, int leaderHint)
    : ReplicationException($"Node {nodeId} cannot serve group {group} [leader {leaderHint}]")
{
    public const string Id = "NotLeader";
    public int LeaderHint { get; } = leaderHint;
    public override string ErrorId => Id;
    public override ReplicationErrorKind Kind => ReplicationErrorKind.Unavailable;

    /// <summary>The hint of a NotLeader error received over the wire (0 when absent).</summary>
    public static int HintOf(string message)
    {
        int at = message.LastIndexOf("[leader ", StringComparison.Ordinal);
        if (at < 0) return 0;
        int end = message.IndexOf(']', at);
        return end > at && int.TryParse(message.AsSpan(at + 8, end - at - 8), out int hint) ? hint : 0;
    }
}
