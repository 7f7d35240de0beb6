using System.Diagnostics;
using Replication.Engine.Cluster;

namespace Replication.Engine.Client;

/// <summary>Ring operations over the client protocol (Cluster/ClusterNode.Ring.cs, ClusterNode.Split.cs): the same for an
/// embedded cluster (whose own client this is) and for node processes.</summary>
public partial class ClusterClient
{
    private static readonly TimeSpan PlacementPoll = TimeSpan.FromMilliseconds(100);
    /// <summary>How long the placement must look settled before a wait for it returns: longer than the control loop's period.</summary>
    private static readonly TimeSpan PlacementSettled = TimeSpan.FromSeconds(1);

    public async Task<IReadOnlyList<ReplicationShard>> SplitShardAsync(int shard, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        var before = GetShards().FirstOrDefault(s => s.Id == shard) ?? throw new ShardNotFoundException(shard) { Target = shard };
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        var (answer, _) = await AdminAsync<SplitAnswer>(AdminOps.ShardSplit, 0, new SplitArgs(shard, (long)timeout.TotalMilliseconds, before.HashStart, before.HashEnd), timeout, cancellationToken).ConfigureAwait(false);
        // The node this client asks for status may apply the map's change a moment after the coordinator did, and the new
        // half's group elects its first leader an election timeout or so after the split applied: the split returns once
        // both halves have a leader, so a runbook's next write to the new half does not start by waiting for one (an
        // operator trying it saw the new shard with Leader 0 and Term 0). Past the timeout the halves are returned as
        // they are: the split itself is done.
        while (true)
        {
            var shards = (await StatusAsync(cancellationToken).ConfigureAwait(false)).Shards;
            var halves = new[] { answer.Shard, answer.NewShard }.Select(id => shards.FirstOrDefault(s => s.Id == id)).ToArray();
            bool late = Stopwatch.GetTimestamp() > deadline;
            if (halves.All(h => h is not null) && (late || halves.All(h => h!.Leader != 0))) return halves!;
            if (late)
                throw new QuorumUnavailableException(answer.NewShard, timeout, $"shard {shard} split (new shard {answer.NewShard}), but the node this client asks has not learned the new map yet");
            await Task.Delay(PlacementPoll, cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task<IReadOnlyList<ReplicationRingEntry>> GetRingAsync(CancellationToken cancellationToken)
    {
        var view = await RingViewAsync(cancellationToken).ConfigureAwait(false);
        return view.Entries.Select((e, i) => new ReplicationRingEntry
        {
            Cluster = Name, Node = e.Node, Zone = e.Zone, State = e.State, Learner = view.Learners[i], Tokens = e.Tokens, Share = e.Share,
            ShardsHeld = e.ShardsHeld, ShardsPlaced = view.Placed[i], ShardsLed = e.ShardsLed, Bytes = e.Bytes,
        }).ToArray();
    }

    public async Task<IReadOnlyList<ReplicationMove>> GetMovesAsync(CancellationToken cancellationToken)
    {
        var view = await RingViewAsync(cancellationToken).ConfigureAwait(false);
        return view.Moves.Select(m => new ReplicationMove { Cluster = Name, Shard = m.Shard, FromNode = m.FromNode, ToNode = m.ToNode, Step = m.Step, Reason = m.Reason }).ToArray();
    }

    private async Task<RingViewAnswer> RingViewAsync(CancellationToken ct)
    {
        ThrowIfDisposed();
        var (view, _) = await AdminAsync<RingViewAnswer>(AdminOps.RingView, 0, new RingViewArgs(), _options.RequestTimeout, ct).ConfigureAwait(false);
        return view;
    }

    public virtual Task<ReplicationNode> AddNodeAsync(string? zone, bool learner, CancellationToken cancellationToken) =>
        throw new NotSupportedRemotelyException(
            "A node of a cluster of node processes joins by being started in its own process (Start-ReplicationNode -Path -Listen -Join); " +
            "Add-ReplicationNode -Endpoint then waits for it and for the replicas the ring moves to it.");

    public async Task<ReplicationNode> WaitForNodeAsync(string endpoint, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            var status = await StatusAsync(cancellationToken).ConfigureAwait(false);
            var node = status.Nodes.FirstOrDefault(n => string.Equals(n.Endpoint, endpoint, StringComparison.OrdinalIgnoreCase));
            if (node is not null) return node;
            if (Stopwatch.GetTimestamp() > deadline)
                throw new EndpointUnreachableException($"No node listening on {endpoint} joined the cluster '{Name}' within {timeout.TotalSeconds:0.#} s; start it with Start-ReplicationNode -Listen {endpoint} -Join <a node of the cluster>.") { Target = endpoint };
            await Task.Delay(PlacementPoll, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Whether something accepts TCP connections on <paramref name="endpoint"/> ("host:port"), trying for up to
    /// <paramref name="grace"/> (a node process just started may not listen yet). True for text that is no endpoint: the
    /// call that uses it says so. Add-ReplicationNode -Endpoint warns when this is false, as it waits for that node to join.
    /// </summary>
    public static async Task<bool> AcceptsConnectionsAsync(string endpoint, TimeSpan grace, CancellationToken cancellationToken)
    {
        System.Net.EndPoint target;
        try { target = ClientConnection.ParseEndpoint(endpoint); }
        catch (FormatException) { return true; }
        var deadline = Stopwatch.GetTimestamp() + (long)(grace.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            try
            {
                using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
                using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                attempt.CancelAfter(TimeSpan.FromSeconds(1));
                await socket.ConnectAsync(target, attempt.Token).ConfigureAwait(false);
                return true;
            }
            catch (Exception e) when (e is System.Net.Sockets.SocketException or OperationCanceledException)
            {
                if (cancellationToken.IsCancellationRequested || Stopwatch.GetTimestamp() >= deadline) return false;
            }
            try { await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken).ConfigureAwait(false); }
            catch (OperationCanceledException) { return false; }
        }
    }

    public async Task SetNodeRoleAsync(int id, string? zone, bool? learner, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        await AdminAsync<NodeChangeAnswer>(AdminOps.NodeChange, 0, new NodeChangeArgs(id, null, zone, learner, false, (long)timeout.TotalMilliseconds), timeout, cancellationToken).ConfigureAwait(false);
    }

    public async Task RemoveNodeAsync(int id, bool force, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        await AdminAsync<NodeChangeAnswer>(AdminOps.NodeChange, 0, new NodeChangeArgs(id, true, null, null, force, (long)timeout.TotalMilliseconds), timeout, cancellationToken).ConfigureAwait(false);
    }

    public async Task PinShardAsync(int shard, IReadOnlyList<int>? nodes, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        await AdminAsync<NodeChangeAnswer>(AdminOps.ShardPin, 0, new PinArgs(shard, nodes?.ToArray(), (long)timeout.TotalMilliseconds), timeout, cancellationToken).ConfigureAwait(false);
    }

    public async Task WaitForPlacementAsync(IProgress<int>? movesLeft, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        string state = "";
        int stuck = 0; // the first shard still moving or short, named by the timeout's error
        long settledSince = 0;
        while (true)
        {
            try
            {
                var view = await RingViewAsync(cancellationToken).ConfigureAwait(false);
                var status = await StatusAsync(cancellationToken).ConfigureAwait(false);
                int holders = view.Entries.Where((e, i) => !view.Learners[i] && e.State != Ring.RingNodeState.Draining && e.State != Ring.RingNodeState.Removed).Count();
                int want = Math.Min(ReplicationFactor, Math.Max(1, holders));
                int leaving = view.Entries.Count(e => e.State == Ring.RingNodeState.Draining);
                var shortShards = status.Shards.Where(s => s.Leader == 0 || s.Voters.Count != want).Select(s => s.Id).ToArray();
                // Learner-only nodes follow every shard as learners and vote in none (ClusterNode.Control.cs).
                var learnerNodes = view.Entries.Where((e, i) => view.Learners[i] && e.State == Ring.RingNodeState.Running).Select(e => e.Node).ToArray();
                int unfollowed = status.Shards.Count(s => learnerNodes.Any(n => !s.Learners.Contains(n) || s.Voters.Contains(n)));
                movesLeft?.Report(view.Moves.Length);
                if (view.Moves.Length == 0 && leaving == 0 && shortShards.Length == 0 && unfollowed == 0)
                {
                    // Settled only once it holds for a moment: right after a node change the placement may not have run yet
                    // (it runs at most once per status period), and a view without moves then looks settled. (Bug fixed:
                    // Add-ReplicationNode -Learner returned in 0.4 s, and node 4 then voted in two shards for a while.)
                    if (settledSince == 0) settledSince = Stopwatch.GetTimestamp();
                    else if (Stopwatch.GetElapsedTime(settledSince) >= PlacementSettled) return;
                }
                else settledSince = 0;
                // The moves themselves, a few of them: a timeout that names only counts sent an operator to look at shard 0.
                string moves = view.Moves.Length == 0 ? ""
                    : " (" + string.Join("; ", view.Moves.Take(3).Select(m => $"shard {m.Shard}: {m.Step} from node {m.FromNode} to node {m.ToNode}"))
                      + (view.Moves.Length > 3 ? "; ..." : "") + ")";
                stuck = view.Moves.Length > 0 ? view.Moves[0].Shard : shortShards.FirstOrDefault();
                state = $"{view.Moves.Length} replica move(s) left{moves}, {leaving} node(s) leaving, {shortShards.Length} shard(s) without a leader or not at {want} voters"
                    + (shortShards.Length > 0 ? $" ({string.Join(", ", shortShards.Take(5))}{(shortShards.Length > 5 ? ", ..." : "")})" : "")
                    + (learnerNodes.Length > 0 ? $", {unfollowed} shard(s) not followed by every learner node" : "");
            }
            catch (ReplicationException e) when (e is QuorumUnavailableException or NotLeaderException or RemoteOperationException)
            {
                state = e.Message; // a leader change while replicas move: ask again
                settledSince = 0;
            }
            if (Stopwatch.GetTimestamp() > deadline)
                throw new QuorumUnavailableException($"The replicas did not settle within {timeout.TotalSeconds:0.###} s: {state}.", stuck) { Target = stuck };
            await Task.Delay(PlacementPoll, cancellationToken).ConfigureAwait(false);
        }
    }
}
