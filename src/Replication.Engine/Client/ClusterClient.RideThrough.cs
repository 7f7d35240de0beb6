using System.Diagnostics;
using Replication.Engine.Cluster;

namespace Replication.Engine.Client;

/// <summary>
/// Riding through a failover (issue 10, item 7): a key request that waits on a node, whether a routed connection to the
/// leader it believes in or the shared connection, is watched, so a node that stops answering (a paused process, a node
/// whose loop is frozen, one cut off) costs its clients about the election and not the request's timeout.
/// <para>
/// After <see cref="WatchAfter"/> the client asks another node it can reach (the shared connection, a routed one, or one it
/// dials among <see cref="Endpoints"/>) who leads the request's shards, and that node answers as soon as it knows one led by
/// a node other than the one the request waits on (ClusterNode.LeaderWatch.cs: from its own replica, so at the election).
/// From then on it also asks the waiting node itself every <see cref="PingEvery"/>, with no wait: whether it still answers,
/// and what it believes. Once a
/// different leader is known and the request has waited at least the election timeout (the answering node's; no leader
/// can have been replaced sooner, so a healthy but slow node is not given up on before a failover could even start):
/// </para>
/// <list type="bullet">
/// <item>a read is sent to that leader at once (reads are idempotent);</item>
/// <item>a write is never sent again (the old node may still append and commit it). It ends OutcomeUnknown when the node
/// it waits on is silent (it answered none of its own questions asked in the last <see cref="SilentAfter"/>), or when that node answers but knows
/// only an older term than the new leader's and has not settled the write within <see cref="DeposedLeaderGrace"/> (a
/// deposed leader that runs settles it within a heartbeat of hearing of the newer term: committed, or lost and refused,
/// and the server's forwarding retries it). A node that answers and already knows the newer leader forwards or settles the
/// write itself: the request waits on, and the watch goes on for a leader newer still.</item>
/// </list>
/// <para>
/// A given-up request on the shared connection moves that connection off the node (retired: new requests go to another
/// endpoint, those still on it keep their chance of an answer), and the leaders learned go into the shard map, so the
/// client's next request neither waits on the silent node again nor is sent back to it by a status that still shows it
/// leading. Nothing here extends a request's deadline: a watch waits at most until it.
/// </para>
/// </summary>
public partial class ClusterClient
{
    /// <summary>How long a key request waits before the client starts watching its shards' leaders: well above an ordinary
    /// write or read (milliseconds), well below any election timeout a failover needs.</summary>
    private static readonly TimeSpan WatchAfter = TimeSpan.FromMilliseconds(150);
    /// <summary>How long the waiting node may leave its own question unanswered before it counts as silent (a paused process,
    /// or one too loaded to answer a request that touches no disk and no Raft state).</summary>
    private static readonly TimeSpan SilentAfter = TimeSpan.FromMilliseconds(250);
    /// <summary>How long a write still waits for a node that answers but knows only an older term than the new leader's: a
    /// deposed leader that runs settles it within a heartbeat of hearing of the newer term (the server's forwarding uses the
    /// same grace, ClusterNode.Routing.cs).</summary>
    private static readonly TimeSpan DeposedLeaderGrace = TimeSpan.FromMilliseconds(200);
    /// <summary>Longest single leader watch; one that ends with no change is sent again while the request waits. Short,
    /// because the node holds a watch open until it ends even when the request it was asked for was answered meanwhile
    /// (there is no cancel message): under load, where a few requests pass <see cref="WatchAfter"/>, watches of 3 s
    /// piled up on the other nodes.</summary>
    private static readonly TimeSpan WatchSpan = TimeSpan.FromSeconds(1);
    /// <summary>Added to a leader watch's own wait before its answer is given up on.</summary>
    private static readonly TimeSpan WatchMargin = TimeSpan.FromSeconds(1);

    /// <summary>A request given up on <see cref="Node"/> (silent, or deposed and not settling): <see cref="Leader"/> (endpoint
    /// <see cref="Endpoint"/>) leads <see cref="Shard"/> now.</summary>
    private sealed record LeaderMove(string Node, int Shard, int Leader, string Endpoint, bool Silent);

    /// <summary>An answer to a leader question: <see cref="Answered"/> (the node answered anything, even an error) and its views.</summary>
    private readonly record struct LeaderAnswer(bool Answered, LeaderWatchAnswer? Views);

    /// <summary>
    /// Watches <paramref name="pending"/>, a request on <paramref name="waitingOn"/> for <paramref name="keys"/>, sent at
    /// <paramref name="sentAt"/> (a <see cref="Stopwatch"/> timestamp), as the class summary says. Null when it completed
    /// (or the watch could not help: no map, no other node answered); else where the request's shard is led now, and the
    /// request is to be given up (the caller reports a write OutcomeUnknown, sends a read there).
    /// </summary>
    private async Task<LeaderMove?> WatchLeaderAsync(ClientConnection waitingOn, IReadOnlyList<string> keys, Task pending, long sentAt, bool idempotent,
        DateTime deadline, CancellationToken ct)
    {
        if (await Task.WhenAny(pending, Task.Delay(WatchAfter, ct)).ConfigureAwait(false) == pending || ct.IsCancellationRequested) return null;
        if (_routes is not { } routes) return null;
        var shards = keys.Select(k => RangeOf(routes, k)).Where(i => i >= 0).Select(i => routes.Shards[i]).Distinct().ToArray();
        if (shards.Length == 0) return null;
        string node = waitingOn.Endpoint;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        // The waiting node, asked every PingEvery with no wait: whether it still answers, and what it believes.
        var own = new Liveness();
        var pinging = PingAsync(waitingOn, shards, own, deadline, stop.Token);
        try
        {
            long afterTerm = -1;
            while (!pending.IsCompleted && DateTime.UtcNow < deadline)
            {
                var elsewhere = WatchElsewhereAsync(node, shards, afterTerm, deadline, stop.Token);
                if (await Task.WhenAny(pending, elsewhere).ConfigureAwait(false) == pending) return null;
                var answer = await elsewhere.ConfigureAwait(false);
                if (answer is null) return null; // no other node answers: the request waits as it would have
                LearnLeaders(answer.Shards.Where(v => v.Leader != 0).Select(v => (v.Shard, v.Endpoint, v.Term)));
                var moved = answer.Shards.Where(v => v.Leader != 0 && v.Term > afterTerm && !string.Equals(v.Endpoint, node, StringComparison.OrdinalIgnoreCase))
                    .OrderByDescending(v => v.Term).FirstOrDefault();
                if (moved is null) continue; // that watch ended with no change: ask again while the request waits

                var bound = TimeSpan.FromMilliseconds(answer.ElectionTimeoutMs);
                var age = Stopwatch.GetElapsedTime(sentAt);
                if (age < bound && await Task.WhenAny(pending, Task.Delay(bound - age, stop.Token)).ConfigureAwait(false) == pending) return null;
                // The node had SilentAfter to answer its first question.
                var asked = own.SinceFirstAsked;
                if (asked < SilentAfter && await Task.WhenAny(pending, Task.Delay(SilentAfter - asked, stop.Token)).ConfigureAwait(false) == pending) return null;
                if (pending.IsCompleted || ct.IsCancellationRequested) return null;
                var (silent, views) = own.Now(SilentAfter);
                if (idempotent || silent) return GiveUp(waitingOn, moved, silent, moveOff: silent);

                // The node answers: a write waits for it unless it knows only an older term than the new leader's.
                var mine = views?.Shards.FirstOrDefault(v => v.Shard == moved.Shard);
                if (mine is not null && mine.Term >= moved.Term)
                {
                    afterTerm = moved.Term; // it knows this leader: it forwards or settles the write; watch for a newer one
                    continue;
                }
                if (await Task.WhenAny(pending, Task.Delay(DeposedLeaderGrace, stop.Token)).ConfigureAwait(false) == pending || ct.IsCancellationRequested) return null;
                return GiveUp(waitingOn, moved, silent: false, moveOff: true); // it answers, but does not serve: a frozen loop
            }
            return null;
        }
        finally
        {
            stop.Cancel();
            await pinging.ConfigureAwait(false);
        }
    }

    /// <summary>How often the waiting node is asked again while a request is watched.</summary>
    private static readonly TimeSpan PingEvery = TimeSpan.FromMilliseconds(100);

    /// <summary>Asks <paramref name="connection"/>'s node every <see cref="PingEvery"/>, without waiting for the previous answer,
    /// until <paramref name="ct"/>; each answer goes to <paramref name="own"/>. Never throws.</summary>
    private static async Task PingAsync(ClientConnection connection, int[] shards, Liveness own, DateTime deadline, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested && DateTime.UtcNow < deadline)
        {
            long askedAt = own.Asking();
            _ = AskLeadersAsync(connection, new LeaderWatchArgs(shards, null, -1, 0), deadline, ct).ContinueWith(t => own.Answered(askedAt, t.Result),
                CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            try { await Task.Delay(PingEvery, ct).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
        }
    }

    /// <summary>What a watched node's answers say: when it was first asked, and the newest question it answered (when that was
    /// asked, and what it believed then). Thread-safe.</summary>
    private sealed class Liveness
    {
        private readonly object _gate = new();
        private long _firstAsked;
        private long _answeredAsked;
        private bool _answered;
        private LeaderWatchAnswer? _views;

        /// <summary>Notes a question sent now; returns its time (a <see cref="Stopwatch"/> timestamp).</summary>
        public long Asking()
        {
            long now = Stopwatch.GetTimestamp();
            lock (_gate) if (_firstAsked == 0) _firstAsked = now;
            return now;
        }

        public TimeSpan SinceFirstAsked
        {
            get { lock (_gate) return _firstAsked == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(_firstAsked); }
        }

        public void Answered(long askedAt, LeaderAnswer answer)
        {
            if (!answer.Answered) return;
            lock (_gate)
            {
                if (_answered && askedAt <= _answeredAsked) return;
                (_answered, _answeredAsked, _views) = (true, askedAt, answer.Views);
            }
        }

        /// <summary>Silent: it answered no question asked in the last <paramref name="within"/>; and its newest views.</summary>
        public (bool Silent, LeaderWatchAnswer? Views) Now(TimeSpan within)
        {
            lock (_gate) return (!_answered || Stopwatch.GetElapsedTime(_answeredAsked) >= within, _views);
        }
    }

    /// <summary>The request on <paramref name="waitingOn"/> is given up; with <paramref name="moveOff"/> (the node is silent, or
    /// answers but did not settle a write) the shared connection moves off it. A read given up on a node that answers (a slow
    /// forwarder) leaves the connection where it is.</summary>
    private LeaderMove GiveUp(ClientConnection waitingOn, ShardLeaderView moved, bool silent, bool moveOff)
    {
        if (moveOff) MoveOff(waitingOn);
        // Its other shards' requests would wait on it too (or on a dial it does not answer): they take other nodes for a while.
        if (silent) Avoid(waitingOn.Endpoint);
        return new LeaderMove(waitingOn.Endpoint, moved.Shard, moved.Leader, moved.Endpoint, silent);
    }

    /// <summary>Retires <paramref name="connection"/> when it is the shared one (ClientConnection.Retire): the next request dials
    /// another endpoint, this one last.</summary>
    private void MoveOff(ClientConnection connection)
    {
        if (Interlocked.CompareExchange(ref _connection, null, connection) != connection) return;
        _movedOff = connection.Endpoint;
        connection.Retire();
    }

    /// <summary>The endpoint the shared connection last moved off (tried last when dialling again).</summary>
    private volatile string? _movedOff;

    /// <summary>
    /// Asks a node other than <paramref name="node"/> to watch <paramref name="shards"/>' leaders for one in a term after
    /// <paramref name="afterTerm"/> (at most <see cref="WatchSpan"/>
    /// and never past <paramref name="deadline"/>): over the shared connection, a routed one, or one dialled to a known endpoint,
    /// the next one when a node does not answer. Null when none answered.
    /// </summary>
    private async Task<LeaderWatchAnswer?> WatchElsewhereAsync(string node, int[] shards, long afterTerm, DateTime deadline, CancellationToken ct)
    {
        var tried = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { node };
        var open = new List<ClientConnection>();
        if (_connection is { IsClosed: false } shared) open.Add(shared);
        open.AddRange(_routed.Values.Where(c => !c.IsClosed));
        foreach (var candidate in open.Select(c => c.Endpoint).Concat(Endpoints).Distinct(StringComparer.OrdinalIgnoreCase).ToArray())
        {
            if (!tried.Add(candidate) || ct.IsCancellationRequested || DateTime.UtcNow >= deadline) continue;
            var connection = open.FirstOrDefault(c => string.Equals(c.Endpoint, candidate, StringComparison.OrdinalIgnoreCase) && !c.IsClosed)
                ?? await RoutedConnectionAsync(candidate, ct).ConfigureAwait(false);
            if (connection is null) continue;
            var left = deadline - DateTime.UtcNow;
            var wait = left < WatchSpan ? left : WatchSpan;
            var answer = await AskLeadersAsync(connection, new LeaderWatchArgs(shards, node, afterTerm, (long)Math.Max(0, wait.TotalMilliseconds)), deadline, ct).ConfigureAwait(false);
            if (answer.Views is { } views) return views;
        }
        return null;
    }

    /// <summary>Sends a leader question on <paramref name="connection"/>; never throws (a failure is an answer with nothing in it,
    /// <see cref="LeaderAnswer.Answered"/> telling whether the node answered at all).</summary>
    private static async Task<LeaderAnswer> AskLeadersAsync(ClientConnection connection, LeaderWatchArgs args, DateTime deadline, CancellationToken ct)
    {
        var timeout = TimeSpan.FromMilliseconds(args.WaitMs) + WatchMargin;
        var left = deadline - DateTime.UtcNow;
        if (left < timeout) timeout = left > TimeSpan.Zero ? left : TimeSpan.FromMilliseconds(1);
        string json = WireJson.Serialize(args);
        try
        {
            var response = await connection.SendAsync(id => new AdminRequest(id, AdminOps.ShardLeaders, 0, json, ReadOnlyMemory<byte>.Empty), timeout, new SentFlag<bool>(false), ct)
                .ConfigureAwait(false);
            return response is AdminResponse a
                ? new LeaderAnswer(true, WireJson.Deserialize<LeaderWatchAnswer>(a.Json, AdminOps.ShardLeaders + " answer"))
                : new LeaderAnswer(true, null); // an error (an older node that does not know the operation): it answers, and tells nothing
        }
        catch (Exception e) when (e is ConnectionLostException or TimeoutException or OperationCanceledException or ReplicationException or Transport.ProtocolException)
        {
            return new LeaderAnswer(false, null);
        }
    }
}
