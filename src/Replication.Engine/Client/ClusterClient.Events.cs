using Replication.Engine.Cluster;

namespace Replication.Engine.Client;

/// <summary>The cluster's event history: each node's read through the administrative operation events.read
/// (Cluster/ClusterNode.Events.cs), all nodes at once, merged by time.</summary>
public partial class ClusterClient
{
    public async Task<EventHistory> GetEventsAsync(DateTimeOffset? since, IReadOnlyList<ReplicationEventType> types, IReadOnlyList<int> shards,
        IReadOnlyList<int> nodes, int? last, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        var known = GetNodes();
        foreach (int id in nodes)
            if (!known.Any(n => n.Id == id)) throw new NodeNotFoundException(id) { Target = id };
        var asked = known.Where(n => nodes.Count == 0 || nodes.Contains(n.Id)).OrderBy(n => n.Id).ToArray();
        var args = new EventsArgs(since, types, shards, last);
        var reads = asked.Select(async n =>
        {
            if (n.State == NodeState.Stopped) return (n.Id, Events: (ReplicationEvent[]?)null, Reason: "stopped");
            try
            {
                var (events, _) = await AdminAsync<ReplicationEvent[]>(AdminOps.EventsRead, n.Id, args, timeout, cancellationToken).ConfigureAwait(false);
                return (n.Id, Events: events, Reason: "");
            }
            catch (ReplicationException e) when (e is not ClusterNotRunningException)
            {
                return (n.Id, Events: null, Reason: e.Message);
            }
        }).ToArray();
        var results = await Task.WhenAll(reads).ConfigureAwait(false);
        IEnumerable<ReplicationEvent> merged = results.Where(r => r.Events is not null).SelectMany(r => r.Events!)
            .OrderBy(e => e.Time).ThenBy(e => e.Node).ThenBy(e => e.Sequence)
            .Select(e => e with { Cluster = Name });
        var list = merged.ToList();
        if (last is int n && list.Count > n) list = list.GetRange(list.Count - n, n);
        return new EventHistory(list, results.Where(r => r.Events is null).Select(r => (r.Id, r.Reason)).ToArray());
    }
}
