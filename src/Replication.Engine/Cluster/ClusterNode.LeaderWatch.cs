using Replication.Engine.Raft;

namespace Replication.Engine.Cluster;

/// <summary>
/// The leader watch a client uses to ride through a failover (issue 10, item 7; Client/ClusterClient.Routing.cs): a client
/// whose request waits on a node asks another node who leads the request's shards, and that node answers as soon as it
/// knows one of them led by a node other than the one the request waits on. It answers from its own replica of the
/// shard (which learns of a new leader at its election, or with the new leader's first message), else from the peers'
/// reports (re-read every <see cref="LeaderWatchPoll"/>): a new leader is known to the client within moments of its
/// election, not a status period later. The same operation with no wait is what the client sends the waiting node itself,
/// to learn whether it still answers and what it believes.
/// </summary>
public sealed partial class ClusterNode
{
    /// <summary>Longest a leader watch is held open here, whatever the client asks (it asks again if it still waits).</summary>
    private static readonly TimeSpan LeaderWatchLimit = TimeSpan.FromSeconds(5);

    private async Task<LeaderWatchAnswer> WatchLeadersAsync(LeaderWatchArgs args, CancellationToken ct)
    {
        var wait = TimeSpan.FromMilliseconds(Math.Clamp(args.WaitMs, 0, (long)LeaderWatchLimit.TotalMilliseconds));
        var until = DateTime.UtcNow + wait;
        int electionMs = (int)Math.Min(int.MaxValue, _options.ElectionTicks * _options.TickInterval.TotalMilliseconds);
        while (true)
        {
            var shards = args.Shards.Distinct().ToArray();
            var views = shards.Select(ShardLeaderNow).ToArray();
            bool moved = views.Any(v => v.Leader != 0 && v.Term > args.AfterTerm && !string.Equals(v.Endpoint, args.NotEndpoint, StringComparison.OrdinalIgnoreCase));
            var left = until - DateTime.UtcNow;
            if (moved || left <= TimeSpan.Zero) return new LeaderWatchAnswer(NodeId, electionMs, views);
            // This node's own replicas signal a leader change at once; only the peers' reports (a shard not hosted here) must
            // be re-read. Waking every LeaderWatchPoll regardless cost a loaded node a timer and a wake-up per watch 20 times a
            // second, for watches whose client had its answer long before (a watch outlives the request it was asked for).
            bool fromReports = shards.Any(s => !_host.Status.ContainsKey(s));
            await _host.WaitForChangeAsync(fromReports && left > LeaderWatchPoll ? LeaderWatchPoll : left, ct).ConfigureAwait(false);
            ct.ThrowIfCancellationRequested();
        }
    }

    /// <summary>The leader of <paramref name="shard"/> and its term as this node knows it now: its own replica's view, else the peers' reports.</summary>
    private ShardLeaderView ShardLeaderNow(int shard)
    {
        var (leader, term) = _host.Status.TryGetValue(shard, out var st)
            ? (st.Role == RaftRole.Leader ? NodeId : st.Leader, st.Term)
            : LeaderAndTermFromReports(shard);
        string endpoint = leader == 0 ? "" : leader == NodeId ? Endpoint : EndpointOf(leader) ?? "";
        return new ShardLeaderView(shard, endpoint.Length == 0 ? 0 : leader, endpoint, Math.Max(0, term));
    }
}
