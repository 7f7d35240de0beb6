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
/// routed connection that cannot be dialled (within <see cref="RoutedDialLimit"/>), breaks before the request was sent,
/// or answers NodeStopping sends the request down the ordinary path (the shared connection and its failover); a write
/// that was sent and lost is OutcomeUnknown there as everywhere. A node that could not be dialled, or that a watch found
/// silent, is not routed to for <see cref="AvoidFor"/>, so the requests for its other shards do not wait on it one by one. A key request that waits, on a routed connection or the shared one, is watched
/// (ClusterClient.RideThrough.cs): once another node answers that a different node leads its shard, a read goes there
/// and a write that cannot be settled is OutcomeUnknown, instead of waiting out the timeout on a node that may never
/// answer; the leaders such a watch learns go into the map at once. The map is refreshed in the background, at most once per
/// <see cref="RouteRefresh"/> while requests flow (one status request), and at once after a routed connection
/// failed; an idle client asks nothing.
/// </para>
/// </summary>
public partial class ClusterClient
{
    /// <summary>Age after which the next routed request refreshes the map in the background (leaders move on failover and balancing).</summary>
    internal static readonly TimeSpan RouteRefresh = TimeSpan.FromSeconds(2);

    /// <summary>The shard map as a guess: hash-range starts (sorted), each range's shard, its leader endpoint (null: unknown) and
    /// the term that was known in, and when it was read.</summary>
    private sealed record RouteTable(ulong[] Starts, int[] Shards, string?[] Leaders, long[] Terms, long ReadAt);

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
        var leaders = shards.Select(s => s.Leader != 0 && endpoints.TryGetValue(s.Leader, out var ep) ? ep : null).ToArray();
        var terms = shards.Select(s => s.Term).ToArray();
        for (int i = 0; i < shards.Length; i++)
        {
            // A leader a watch learned wins over a status no newer than it: a status shows a paused leader as leading until
            // a poll of it fails, and only then the leader elected meanwhile (ClusterNode.Status.cs).
            if (_watchedLeaders.TryGetValue(shards[i].Id, out var seen))
            {
                if (seen.Term >= terms[i]) (leaders[i], terms[i]) = (seen.Endpoint, seen.Term);
                else _watchedLeaders.TryRemove(new KeyValuePair<int, (string, long)>(shards[i].Id, seen));
            }
        }
        _routes = new RouteTable(shards.Select(s => s.HashStart).ToArray(), shards.Select(s => s.Id).ToArray(), leaders, terms, Environment.TickCount64);
    }

    /// <summary>Shard leaders learned from leader watches (ClusterClient.RideThrough.cs): endpoint and term, per shard.</summary>
    private readonly ConcurrentDictionary<int, (string Endpoint, long Term)> _watchedLeaders = new();

    /// <summary>Takes the leaders a leader watch answered (each no older than what the map holds) into the map and keeps them
    /// over statuses that are not newer.</summary>
    private void LearnLeaders(IEnumerable<(int Shard, string Endpoint, long Term)> leaders)
    {
        foreach (var (shard, endpoint, term) in leaders)
        {
            _watchedLeaders.AddOrUpdate(shard, (endpoint, term), (_, old) => old.Term > term ? old : (endpoint, term));
            var routes = _routes;
            if (routes is null) continue;
            var names = (string?[])routes.Leaders.Clone();
            var terms = (long[])routes.Terms.Clone();
            bool changed = false;
            for (int i = 0; i < routes.Shards.Length; i++)
            {
                if (routes.Shards[i] != shard || terms[i] > term || string.Equals(names[i], endpoint, StringComparison.OrdinalIgnoreCase)) continue;
                (names[i], terms[i]) = (endpoint, term);
                changed = true;
            }
            if (changed) _routes = routes with { Leaders = names, Terms = terms };
        }
    }

    /// <summary>The endpoint of the node believed to lead <paramref name="key"/>'s shard, or null (ordinary path): also when that
    /// node is avoided (<see cref="Avoid"/>). Starts a background refresh when the map is old.</summary>
    private string? RouteOf(string key)
    {
        var routes = _routes;
        if (routes is null || !_options.RouteToLeaders) return null;
        if (Environment.TickCount64 - routes.ReadAt > (long)RouteRefresh.TotalMilliseconds) RefreshRoutes();
        return LeaderOf(routes, key) is { } leader && !Avoided(leader) ? leader : null;
    }

    /// <summary>
    /// How long a node found silent is not routed to (<see cref="Avoid"/>): a request that would go to it takes the ordinary
    /// path (the shared connection, on another node, which forwards it by its own view) and the ordinary path dials it last.
    /// Long enough for the map to learn the leaders elected meanwhile (a refresh is started at once; a node's status shows
    /// a silent peer unreachable within a poll), short enough that a node back from a pause is routed to again soon.
    /// </summary>
    private static readonly TimeSpan AvoidFor = TimeSpan.FromSeconds(2);
    /// <summary>Longest wait to dial a routed connection (or the ConnectTimeout, when shorter). A routed connection only saves a
    /// hop, so a node that does not complete a handshake this soon (a paused process accepts the TCP connection and answers
    /// nothing) is given up on for the ordinary path, not waited on for the request's whole timeout.</summary>
    private static readonly TimeSpan RoutedDialLimit = TimeSpan.FromMilliseconds(500);

    /// <summary>Endpoints found silent: the <see cref="Environment.TickCount64"/> until which each is avoided.</summary>
    private readonly ConcurrentDictionary<string, long> _avoided = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Avoids <paramref name="endpoint"/> for <see cref="AvoidFor"/> (it stopped answering a request, or a routed dial to it
    /// timed out), and marks the map old so the leaders elected meanwhile are read.</summary>
    private void Avoid(string endpoint)
    {
        _avoided[endpoint] = Environment.TickCount64 + (long)AvoidFor.TotalMilliseconds;
        RoutesStale();
    }

    private bool Avoided(string endpoint)
    {
        if (!_avoided.TryGetValue(endpoint, out long until)) return false;
        if (Environment.TickCount64 < until) return true;
        _avoided.TryRemove(new KeyValuePair<string, long>(endpoint, until));
        return false;
    }

    /// <summary>How long a background refresh waits for its status: one sent to a node that stopped answering must not hold
    /// off the next refresh for the whole request timeout.</summary>
    private static readonly TimeSpan RouteRefreshLimit = TimeSpan.FromSeconds(5);

    /// <summary>Reads the status again in the background (one refresh at a time, given up after <see cref="RouteRefreshLimit"/>);
    /// failures leave the old map.</summary>
    private void RefreshRoutes()
    {
        if (_disposed || Interlocked.Exchange(ref _refreshingRoutes, 1) == 1) return;
        _ = Task.Run(async () =>
        {
            using var bound = new CancellationTokenSource(RouteRefreshLimit);
            try { await StatusAsync(bound.Token).ConfigureAwait(false); }
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
                var limit = _options.ConnectTimeout < RoutedDialLimit ? _options.ConnectTimeout : RoutedDialLimit;
                var connection = await ClientConnection.ConnectAsync(endpoint, _security, Id, limit, ct).ConfigureAwait(false);
                connection.ClusterName = Name;
                _routed[endpoint] = connection;
                return connection;
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or Transport.ProtocolException or AuthenticationFailedException
                || (e is OperationCanceledException && !ct.IsCancellationRequested))
            {
                Avoid(endpoint);
                return null;
            }
        }
        finally { _routedGate.Release(); }
    }

    private static string? LeaderOf(RouteTable routes, string key) => RangeOf(routes, key) is int i and >= 0 ? routes.Leaders[i] : null;

    /// <summary>The index of <paramref name="key"/>'s range in <paramref name="routes"/> (-1: before the first).</summary>
    private static int RangeOf(RouteTable routes, string key)
    {
        int i = Array.BinarySearch(routes.Starts, KeyHash.Of(key));
        return i < 0 ? ~i - 1 : i;
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
