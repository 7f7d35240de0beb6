using System.Collections.Concurrent;
using Replication.Engine.Cluster;
using Replication.Engine.Ring;

namespace Replication.Engine.Client;

/// <summary>
/// Leader routing (issue 11, item 3): the client keeps the shard map (each shard's hash range and leader, from the
/// status it reads anyway) and sends a key request straight to the node that leads the key's shard, over a
/// connection of its own to that node, instead of letting the node it is connected to forward it (one hop less:
/// a forwarded write costs the forwarding node a request, a response and a thread hop).
/// <para>
/// The map is only a guess and never decides correctness: every node still routes whatever it receives by its own
/// map (a stale guess, a split shard, a moved leader just cost the forwarding hop again), so the request's outcome
/// and the OutcomeUnknown rule are those of <see cref="CallWithConnectionAsync"/> whichever node it went to. A
/// routed connection that cannot be dialled, breaks before the request was sent, or answers NodeStopping sends the
/// request down the ordinary path (the shared connection and its failover); a write that was sent and lost is
/// OutcomeUnknown there as everywhere. A routed request that waits is watched as a forwarding node watches a
/// forwarded one (<see cref="LeaderMovedAsync"/>): when another node leads its shard meanwhile (the routed node paused
/// or cut off), a read goes down the ordinary path at once and a write is OutcomeUnknown, instead of waiting out the
/// timeout on a node that may never answer. The map is refreshed in the background, at most once per
/// <see cref="RouteRefresh"/> while requests flow (one status request), and at once after a routed connection
/// failed; an idle client asks nothing.
/// </para>
/// </summary>
public partial class ClusterClient
{
    /// <summary>Age after which the next routed request refreshes the map in the background (leaders move on failover and balancing).</summary>
    internal static readonly TimeSpan RouteRefresh = TimeSpan.FromSeconds(2);

    /// <summary>The shard map as a guess: hash-range starts (sorted), each range's leader endpoint (null: unknown), the endpoints
    /// of nodes the status showed not running (stopped or unreachable), and when it was read.</summary>
    private sealed record RouteTable(ulong[] Starts, string?[] Leaders, HashSet<string> Down, long ReadAt);

    private volatile RouteTable? _routes;
    private readonly ConcurrentDictionary<string, ClientConnection> _routed = new(StringComparer.OrdinalIgnoreCase);
    private readonly SemaphoreSlim _routedGate = new(1, 1);
    private int _refreshingRoutes; // 1 while a background refresh runs

    /// <summary>Takes the leaders and ranges of a status this client read.</summary>
    private void LearnRoutes(ClusterStatus status)
    {
        var endpoints = status.Nodes.Where(n => n.Endpoint.Length > 0).ToDictionary(n => n.Id, n => n.Endpoint);
        var shards = status.Shards.OrderBy(s => s.HashStart).ToArray();
        // A status without ranges (all starting at 0: an old node, or a cluster still forming) gives no map.
        if (shards.Length == 0 || (shards.Length > 1 && shards[^1].HashStart == 0)) return;
        _routes = new RouteTable(
            shards.Select(s => s.HashStart).ToArray(),
            shards.Select(s => s.Leader != 0 && endpoints.TryGetValue(s.Leader, out var ep) ? ep : null).ToArray(),
            status.Nodes.Where(n => n.State != NodeState.Running && n.Endpoint.Length > 0).Select(n => n.Endpoint).ToHashSet(StringComparer.OrdinalIgnoreCase),
            Environment.TickCount64);
    }

    /// <summary>The endpoint of the node believed to lead <paramref name="key"/>'s shard, or null (ordinary path).
    /// Starts a background refresh when the map is old.</summary>
    private string? RouteOf(string key)
    {
        var routes = _routes;
        if (routes is null || !_options.RouteToLeaders) return null;
        if (Environment.TickCount64 - routes.ReadAt > (long)RouteRefresh.TotalMilliseconds) RefreshRoutes();
        return LeaderOf(routes, key);
    }

    /// <summary>Reads the status again in the background (one refresh at a time); failures leave the old map.</summary>
    private void RefreshRoutes()
    {
        if (_disposed || Interlocked.Exchange(ref _refreshingRoutes, 1) == 1) return;
        _ = Task.Run(async () =>
        {
            try { await StatusAsync(CancellationToken.None).ConfigureAwait(false); }
            catch (Exception e) when (e is ReplicationException or OperationCanceledException or TimeoutException) { }
            finally { Volatile.Write(ref _refreshingRoutes, 0); }
        });
    }

    /// <summary>Marks the map old, so the next routed request refreshes it.</summary>
    private void RoutesStale()
    {
        if (_routes is { } r) _routes = r with { ReadAt = long.MinValue / 2 };
    }

    /// <summary>The open connection to <paramref name="endpoint"/>, dialled when needed; null when it cannot be had
    /// (the caller takes the ordinary path).</summary>
    private async Task<ClientConnection?> RoutedConnectionAsync(string endpoint, CancellationToken ct)
    {
        if (_routed.TryGetValue(endpoint, out var open) && !open.IsClosed) return open;
        if (_connection is { IsClosed: false } shared && string.Equals(shared.Endpoint, endpoint, StringComparison.OrdinalIgnoreCase)) return shared;
        await _routedGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_disposed) return null;
            if (_routed.TryGetValue(endpoint, out open))
            {
                if (!open.IsClosed) return open;
                _routed.TryRemove(endpoint, out _);
                await open.DisposeAsync().ConfigureAwait(false);
            }
            try
            {
                var connection = await ClientConnection.ConnectAsync(endpoint, _security, Id, _options.ConnectTimeout, ct).ConfigureAwait(false);
                connection.ClusterName = Name;
                _routed[endpoint] = connection;
                return connection;
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or Transport.ProtocolException or AuthenticationFailedException
                || (e is OperationCanceledException && !ct.IsCancellationRequested))
            {
                RoutesStale();
                return null;
            }
        }
        finally { _routedGate.Release(); }
    }

    /// <summary>How long a routed request waits before the client starts watching for a newer leader of its shards.</summary>
    private static readonly TimeSpan RouteWatchAfter = TimeSpan.FromMilliseconds(300);
    /// <summary>How often a waiting routed request asks the connected node (the ordinary path) who leads now.</summary>
    private static readonly TimeSpan RouteWatchPoll = TimeSpan.FromMilliseconds(250);
    /// <summary>How long a routed write still waits for its node's answer once another node leads its shard: a deposed leader
    /// that runs settles it within a heartbeat of hearing of the newer term; a paused or dead one does not (the server's
    /// forwarding uses the same grace, ClusterNode.Routing.cs).</summary>
    private static readonly TimeSpan DeposedLeaderGrace = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// Failover for a routed request (what a forwarding node does for a forwarded one, ClusterNode.Routing.cs): once
    /// <paramref name="pending"/> has waited <see cref="RouteWatchAfter"/>, reads the status through the ordinary path every
    /// <see cref="RouteWatchPoll"/>; true as soon as the cluster sees <paramref name="route"/>'s node down (stopped or
    /// unreachable: a paused process is within a status period and a poll timeout, ClusterNode.Status.cs) and another node
    /// is known to lead one of <paramref name="keys"/>' shards while the request still waits; false when it completed first.
    /// </summary>
    private async Task<bool> LeaderMovedAsync(string route, IReadOnlyList<string> keys, Task pending, CancellationToken ct)
    {
        if (await Task.WhenAny(pending, Task.Delay(RouteWatchAfter, ct)).ConfigureAwait(false) == pending) return false;
        while (!pending.IsCompleted)
        {
            using (var poll = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                poll.CancelAfter(RouteWatchPoll * 4);
                try { await StatusAsync(poll.Token).ConfigureAwait(false); }
                catch (Exception e) when (e is ReplicationException or TimeoutException || (e is OperationCanceledException && !ct.IsCancellationRequested)) { }
            }
            // Both are needed: a leader moved by a transfer (balancing) while its old leader runs settles the request (answered,
            // or refused and retried by that node), so only a routed node the cluster sees down is given up on.
            var routes = _routes;
            if (routes is not null && routes.Down.Contains(route)
                && keys.Any(k => LeaderOf(routes, k) is { } leader && !string.Equals(leader, route, StringComparison.OrdinalIgnoreCase)))
                return !pending.IsCompleted;
            if (await Task.WhenAny(pending, Task.Delay(RouteWatchPoll, ct)).ConfigureAwait(false) == pending) return false;
        }
        return false;
    }

    private static string? LeaderOf(RouteTable routes, string key)
    {
        int i = Array.BinarySearch(routes.Starts, KeyHash.Of(key));
        if (i < 0) i = ~i - 1;
        return i >= 0 ? routes.Leaders[i] : null;
    }

    /// <summary>Endpoints of the open routed connections (tests).</summary>
    internal IReadOnlyCollection<string> RoutedEndpoints => _routed.Where(c => !c.Value.IsClosed).Select(c => c.Key).ToArray();

    /// <summary>Closes the routed connections (on dispose).</summary>
    private async Task CloseRoutedAsync()
    {
        await _routedGate.WaitAsync().ConfigureAwait(false);
        try
        {
            foreach (var c in _routed.Values) await c.DisposeAsync().ConfigureAwait(false);
            _routed.Clear();
        }
        finally { _routedGate.Release(); }
    }
}
