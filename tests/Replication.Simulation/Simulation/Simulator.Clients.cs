using Replication.Engine.Ring;
using Replication.Engine.Verification;

namespace Replication.Simulation.Simulation;

/// <summary>Simulated clients: one operation at a time each, with a deadline, recorded in the history.</summary>
public sealed partial class Simulator
{
    private readonly SimClient[] _clients;
    private int _nextOpId;

    /// <summary>
    /// A client. Regular clients run random operations during the chaos; a final client, after
    /// healing, does one linearizable read of its key and then one write to it (each retried until
    /// it gets an answer): the read proves no acknowledged write was lost, the write that the healed
    /// cluster makes progress (<see cref="CheckProgress"/>). A client routes each key by its copy of the shard map (the
    /// product's <see cref="ShardRangeMap"/> and key hash), takes the current map when a shard refuses a key it split off
    /// (WrongShard), and keeps a leader guess per shard.
    /// </summary>
    private sealed class SimClient(int id, bool final, ShardRangeMap map)
    {
        public int Id { get; } = id;
        public bool Final { get; } = final;
        /// <summary>A final client has had its read answered (it writes next).</summary>
        public bool ReadDone { get; set; }
        public bool Done { get; set; }
        public ShardRangeMap Map { get; set; } = map;
        /// <summary>Per shard, the node the client believes leads it.</summary>
        public Dictionary<int, int> LeaderGuess { get; } = new();
        public int Counter { get; set; }
        public Dictionary<string, long> SeenVersion { get; } = new();
        public (int OpId, KvInput Input, long Invoke, int Shard)? Current { get; set; }
    }

    private SimClient Client(int id) => _clients[id - 1];

    private void DispatchClient(object ev)
    {
        switch (ev)
        {
            case IssueEvent i: Issue(Client(i.Client)); break;
            case RequestEvent r:
                var n = Node(r.Node);
                Mix(4, r.Node, r.Request.OpId, 0, 0, 0);
                if (n.Up && IsPaused(r.Node)) Defer(r.Node, -r.Request.Client, r);
                else if (n.Up) n.Handle(r.Request);
                break;
            case ReplyEvent r: OnReply(r); break;
            case TimeoutEvent t:
                var c = Client(t.Client);
                if (c.Current is not { } cur || cur.OpId != t.OpId) return;
                Record(HistoryOp.Unknown(cur.OpId, c.Id, cur.Input, cur.Invoke));
                TraceLine(() => $"client {c.Id} op {cur.OpId} {cur.Input} timed out");
                // A final client fails over at once: the availability check (CheckProgress) is about
                // the cluster, not about a client that keeps knocking on a node shut down for good.
                if (c.Final || _rng.NextDouble() >= Options.StickyRate) c.LeaderGuess[cur.Shard] = RandomLiveIdIn(cur.Shard);
                Next(c);
                break;
        }
    }

    private void Issue(SimClient c)
    {
        if (c.Current is not null || c.Done || (!c.Final && Now >= ChaosEnd)) return;
        KvInput input;
        bool lease = false;
        if (c.Final)
        {
            string key = Key(c.Id - Options.Clients - 1);
            input = c.ReadDone ? new KvInput(KvOpKind.Put, key, $"final.{c.Id}.{++c.Counter}") : new KvInput(KvOpKind.Get, key);
        }
        else
        {
            string key = Key(_rng.Next(Options.Keys));
            int roll = _rng.Next(100);
            string value = $"{c.Id}.{++c.Counter}";
            int reads = Options.ReadPercent, writes = 100 - reads;
            if (roll < reads)
            {
                input = new KvInput(KvOpKind.Get, key);
                lease = _rng.Next(2) == 0;
            }
            else if (roll < reads + writes * 40 / 100) input = new KvInput(KvOpKind.Put, key, value);
            else if (roll < reads + writes * 55 / 100) input = new KvInput(KvOpKind.Delete, key);
            else
            {
                long expected = Math.Max(0, c.SeenVersion.GetValueOrDefault(key) + _rng.Next(-1, 2));
                input = new KvInput(KvOpKind.Cas, key, value, expected);
            }
        }
        int opId = ++_nextOpId;
        int shard = c.Map.ShardFor(input.Key);
        c.Current = (opId, input, ++_historyClock, shard);
        if (!c.LeaderGuess.ContainsKey(shard)) c.LeaderGuess[shard] = RandomLiveIdIn(shard);
        int target = _rng.NextDouble() < Options.RandomRouteRate ? RandomLiveIdIn(shard) : c.LeaderGuess[shard];
        Mix(5, c.Id, opId, target, (long)input.Kind, 0);
        TraceLine(() => $"client {c.Id} op {opId} {input}{(lease ? " lease" : "")} -> node {target}");
        Schedule(1 + _rng.Next(3), new RequestEvent(target, new ClientRequest(opId, c.Id, input, lease)));
        Schedule((long)Options.ClientTimeoutTicks * SimOptions.TickUnits, new TimeoutEvent(c.Id, opId));
    }

    private static string Key(int i) => "k" + i;

    /// <summary>A node answers a request; the answer reaches the client a little later.</summary>
    /// <param name="at">Where the operation took effect (see <see cref="HistoryOp.At"/>), for an Ok answer.</param>
    internal void Reply(SimNode from, ClientRequest req, ReplyKind kind, KvOutput? output, int leaderHint, long? at = null) =>
        Schedule(1 + _rng.Next(3), new ReplyEvent(req.Client, req.OpId, kind, output, leaderHint, from.Id, at));

    private void OnReply(ReplyEvent r)
    {
        var c = Client(r.Client);
        Mix(6, r.Client, r.OpId, (long)r.Kind, r.Output?.Version ?? -1, r.From);
        if (c.Current is not { } cur || cur.OpId != r.OpId) return; // too late: already recorded as unknown
        long ret = ++_historyClock;
        TraceLine(() => $"client {c.Id} op {cur.OpId} {cur.Input} <- node {r.From}: {r.Kind} {r.Output}");
        if (r.Kind == ReplyKind.Ok)
        {
            Record(HistoryOp.Ok(cur.OpId, c.Id, cur.Input, cur.Invoke, ret, r.Output!) with { At = r.At });
            c.SeenVersion[cur.Input.Key] = r.Output!.Version;
            if (c.Final && cur.Input.Kind == KvOpKind.Get) c.ReadDone = true;
            else if (c.Final) OnFinalWrite(c);
        }
        else if (r.Kind == ReplyKind.WrongShard)
        {
            // Nothing happened (refused at apply, or a read refused): the client takes the newer map and goes on.
            Record(HistoryOp.Failed(cur.OpId, c.Id, cur.Input, cur.Invoke, ret));
            c.Map = _map;
            Count("client routed again after a split");
        }
        else
        {
            Record(HistoryOp.Failed(cur.OpId, c.Id, cur.Input, cur.Invoke, ret));
            c.LeaderGuess[cur.Shard] = r.LeaderHint != 0 && r.LeaderHint != r.From ? r.LeaderHint : RandomLiveIdIn(cur.Shard);
        }
        Next(c);
    }

    private void Next(SimClient c)
    {
        c.Current = null;
        if (c.Done) return;
        long delay = _rng.Next(3 * SimOptions.TickUnits);
        Schedule(c.Final ? delay : PastQuietSpell(delay), new IssueEvent(c.Id)); // Simulator.Quiescence.cs
    }

    private void Record(HistoryOp op) => _result.History.Add(op);

    /// <summary>A final client's write was acknowledged; the last one marks the healed cluster's progress.</summary>
    private void OnFinalWrite(SimClient c)
    {
        c.Done = true;
        if (_clients.All(x => !x.Final || x.Done)) _result.TicksToProgress = (Now - ChaosEnd + SimOptions.TickUnits - 1) / SimOptions.TickUnits;
    }

    /// <summary>
    /// Availability: a correct cluster, once healed (every node up, every link open, no pause, no
    /// slow disk), serves a linearizable read and acknowledges a write on every key within
    /// <see cref="ProgressTicks"/> ticks (elections, restarts, snapshot transfers and a membership
    /// change in flight all included). A protocol that loses liveness under the faults it has just
    /// survived fails here rather than only at the far convergence deadline.
    /// </summary>
    private void CheckProgress()
    {
        var waiting = _clients.Where(c => c.Final && !c.Done).Select(c => c.Id).ToList();
        if (waiting.Count > 0)
            Violation($"no progress: {ProgressTicks} ticks after healing, final clients {{{string.Join(",", waiting)}}} still wait for their read and write: {Describe()}");
    }

    private sealed record IssueEvent(int Client);
    private sealed record RequestEvent(int Node, ClientRequest Request);
    private sealed record ReplyEvent(int Client, int OpId, ReplyKind Kind, KvOutput? Output, int LeaderHint, int From, long? At);
    private sealed record TimeoutEvent(int Client, int OpId);
}
