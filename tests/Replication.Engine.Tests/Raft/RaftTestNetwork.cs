using Replication.Engine.Raft;
using Xunit;

namespace Replication.Engine.Tests.Raft;

/// <summary>
/// A deterministic, single-threaded network of <see cref="RaftNode"/>s for tests. Logical time only:
/// nothing happens unless a test ticks a node or delivers queued messages. Each node has an in-memory
/// "disk" that holds exactly what its Readies persisted (hard state, entries, applied index and the
/// applied entries of its state machine), so <see cref="Crash"/> loses everything else.
///
/// Invariants checked on every step (a violation fails the test at once):
/// - election safety (paper 5.2): at most one leader per term, ever;
/// - state machine safety (paper 5.4.3): no two nodes apply different entries at one index, and every
///   node applies indexes in order without gaps.
/// Not thread-safe.
/// </summary>
internal sealed class RaftTestNetwork
{
    /// <summary>What a node made durable through its Readies.</summary>
    public sealed class Disk
    {
        public HardState HardState = HardState.Empty;
        public List<LogEntry> Entries = new();
        /// <summary>The state machine is durable too: applied index and the entries it applied.</summary>
        public long Applied;
        public List<LogEntry> AppliedEntries = new();
        public List<ReadState> ReadStates = new();
    }

    private readonly int _seed;
    private readonly Func<RaftConfig, RaftConfig>? _configure;
    private readonly HashSet<(int From, int To)> _cuts = new();
    private readonly Dictionary<long, LogEntry> _appliedAt = new();
    private readonly Dictionary<int, int> _restarts = new();

    public IReadOnlyList<int> VoterIds { get; }
    public IReadOnlyList<int> LearnerIds { get; }
    public IReadOnlyList<int> AllIds { get; }
    public SortedDictionary<int, RaftNode> Nodes { get; } = new();
    public Dictionary<int, Disk> Disks { get; } = new();
    /// <summary>Crashed nodes: they neither tick nor receive until <see cref="Restart"/>.</summary>
    public HashSet<int> Down { get; } = new();
    /// <summary>Nodes whose Readies are processed only by an explicit <see cref="ProcessReady"/> call
    /// (to hold work unpersisted, e.g. before a crash).</summary>
    public HashSet<int> ManualReady { get; } = new();
    /// <summary>Messages sent and not yet delivered, in send order.</summary>
    public List<RaftMessage> Queue { get; } = new();
    /// <summary>Every message delivered (after <see cref="Intercept"/>), in order.</summary>
    public List<RaftMessage> Delivered { get; } = new();
    /// <summary>Applied to each message at delivery: return it (possibly changed) or null to drop it.</summary>
    public Func<RaftMessage, RaftMessage?>? Intercept { get; set; }
    /// <summary>Observes every Ready before the harness carries it out.</summary>
    public Action<int, Ready>? OnReady { get; set; }
    /// <summary>The leader seen for each term (election safety record).</summary>
    public Dictionary<long, int> LeaderOfTerm { get; } = new();

    public RaftTestNetwork(int voters, int learners = 0, int seed = 1,
        Func<RaftConfig, RaftConfig>? configure = null,
        Func<int, (HardState State, IReadOnlyList<LogEntry> Entries)?>? initial = null)
    {
        _seed = seed;
        _configure = configure;
        VoterIds = Enumerable.Range(1, voters).ToArray();
        LearnerIds = Enumerable.Range(voters + 1, learners).ToArray();
        AllIds = VoterIds.Concat(LearnerIds).ToArray();
        foreach (int id in AllIds)
        {
            var disk = new Disk();
            if (initial?.Invoke(id) is { } init)
            {
                disk.HardState = init.State;
                disk.Entries = init.Entries.ToList();
            }
            Disks[id] = disk;
            Nodes[id] = NewNode(id);
        }
    }

    public static IReadOnlyList<LogEntry> Log(params long[] terms) =>
        terms.Select((t, i) => new LogEntry(i + 1, t, EntryType.Normal, new[] { (byte)(i + 1), (byte)t })).ToArray();

    public RaftConfig ConfigFor(int id)
    {
        _restarts.TryGetValue(id, out int restarts);
        var cfg = new RaftConfig
        {
            Id = id,
            Voters = VoterIds,
            Learners = LearnerIds,
            ElectionTicks = 10,
            HeartbeatTicks = 1,
            Applied = Disks[id].Applied,
            Random = new Random(_seed * 7919 + id * 104729 + restarts),
        };
        return _configure is null ? cfg : _configure(cfg);
    }

    private RaftNode NewNode(int id)
    {
        var disk = Disks[id];
        return new RaftNode(ConfigFor(id), disk.HardState, disk.Entries.ToList());
    }

    // ---- network shape ----

    public void Cut(int a, int b) { _cuts.Add((a, b)); _cuts.Add((b, a)); }
    public void CutOneWay(int from, int to) => _cuts.Add((from, to));
    public void Isolate(int id)
    {
        foreach (int other in AllIds) if (other != id) Cut(id, other);
    }
    public void Heal() => _cuts.Clear();

    // ---- time and delivery ----

    public void Tick(int id)
    {
        if (Down.Contains(id)) return;
        Nodes[id].Tick();
        AfterStep(id);
    }

    public void TickAll()
    {
        foreach (int id in AllIds) Tick(id);
    }

    /// <summary>Delivers every message queued now (not the ones this produces). Returns how many were taken.</summary>
    public int DeliverOnce() => DeliverWhere(_ => true);

    /// <summary>Delivers the queued messages matching <paramref name="which"/>; the others stay queued.</summary>
    public int DeliverWhere(Func<RaftMessage, bool> which)
    {
        var batch = Queue.Where(which).ToList();
        foreach (var m in batch) Queue.Remove(m);
        foreach (var m in batch) DeliverOne(m);
        return batch.Count;
    }

    /// <summary>Delivers until the queue is empty (bounded: messages can cause messages).</summary>
    public void DeliverAll(int maxRounds = 100)
    {
        for (int i = 0; i < maxRounds && Queue.Count > 0; i++) DeliverOnce();
    }

    /// <summary>Ticks every node and delivers everything, <paramref name="ticks"/> times.</summary>
    public void Run(int ticks)
    {
        for (int t = 0; t < ticks; t++)
        {
            TickAll();
            DeliverAll();
        }
    }

    private void DeliverOne(RaftMessage m)
    {
        if (!Nodes.ContainsKey(m.To) || Down.Contains(m.To) || _cuts.Contains((m.From, m.To))) return;
        var delivered = Intercept is null ? m : Intercept(m);
        if (delivered is null) return;
        Delivered.Add(delivered);
        Nodes[m.To].Step(delivered);
        AfterStep(m.To);
    }

    private void AfterStep(int id)
    {
        CheckElectionSafety();
        if (!ManualReady.Contains(id)) ProcessReady(id);
    }

    /// <summary>Carries out a node's Readies the way the contract says: persist, send, apply, advance.</summary>
    public void ProcessReady(int id)
    {
        var node = Nodes[id];
        var disk = Disks[id];
        for (int guard = 0; guard < 1000 && node.HasReady; guard++)
        {
            var rd = node.GetReady();
            OnReady?.Invoke(id, rd);
            // 1. persist hard state and entries (entries replace stored ones from Entries[0].Index on).
            if (rd.HardState is { } hs) disk.HardState = hs;
            if (rd.Entries.Count > 0)
            {
                int from = (int)(rd.Entries[0].Index - 1);
                Assert.True(from <= disk.Entries.Count, $"node {id}: Ready entries start at {from + 1} past the stored log end {disk.Entries.Count}");
                disk.Entries.RemoveRange(from, disk.Entries.Count - from);
                disk.Entries.AddRange(rd.Entries);
            }
            // 2. send.
            Queue.AddRange(rd.Messages);
            // 3. apply, checking state machine safety.
            foreach (var e in rd.CommittedEntries)
            {
                Assert.Equal(disk.Applied + 1, e.Index);
                Assert.True(e.Index <= disk.Entries.Count && disk.Entries[(int)e.Index - 1] == e,
                    $"node {id} applies {e} that is not in its durable log");
                if (_appliedAt.TryGetValue(e.Index, out var other))
                    Assert.True(other.Term == e.Term && other.Data.SequenceEqual(e.Data),
                        $"state machine safety: node {id} applies {e} where another node applied {other}");
                else _appliedAt[e.Index] = e;
                disk.AppliedEntries.Add(e);
                disk.Applied = e.Index;
            }
            disk.ReadStates.AddRange(rd.ReadStates);
            node.Advance(rd);
            CheckElectionSafety();
        }
    }

    private void CheckElectionSafety()
    {
        foreach (var (id, node) in Nodes)
        {
            if (Down.Contains(id) || node.Role != RaftRole.Leader) continue;
            if (LeaderOfTerm.TryGetValue(node.Term, out int seen))
                Assert.True(seen == id, $"election safety: nodes {seen} and {id} both led term {node.Term}");
            else LeaderOfTerm[node.Term] = id;
        }
    }

    // ---- crashes ----

    /// <summary>Stops a node: it loses everything not on its disk; messages to it are lost.</summary>
    public void Crash(int id)
    {
        Down.Add(id);
        Queue.RemoveAll(m => m.To == id);
    }

    /// <summary>Rebuilds a crashed node from its disk (hard state, entries, applied index).</summary>
    public void Restart(int id)
    {
        _restarts[id] = _restarts.GetValueOrDefault(id) + 1;
        Down.Remove(id);
        Nodes[id] = NewNode(id);
        AfterStep(id);
    }

    // ---- queries ----

    /// <summary>The up node that leads the highest term, or 0.</summary>
    public int CurrentLeader() =>
        Nodes.Where(kv => !Down.Contains(kv.Key) && kv.Value.Role == RaftRole.Leader)
            .OrderByDescending(kv => kv.Value.Term).Select(kv => kv.Key).FirstOrDefault();

    /// <summary>Runs until some node leads and has committed an entry of its term. Returns its id.</summary>
    public int WaitForLeader(int maxTicks = 300)
    {
        for (int t = 0; t < maxTicks; t++)
        {
            int lead = CurrentLeader();
            if (lead != 0 && IsSettledLeader(lead)) return lead;
            TickAll();
            DeliverAll();
        }
        Assert.Fail($"no leader within {maxTicks} ticks: {string.Join("; ", Nodes.Values)}");
        return 0;
    }

    /// <summary>Ticks only <paramref name="id"/> (delivering everything) until it leads. Returns the ticks used.</summary>
    public int ElectByTicking(int id, int maxTicks = 100)
    {
        // Voters refuse votes for their first election timeout after starting (lease safety across
        // restarts), so first let the others' clocks run that long, with everything they send dropped.
        foreach (int other in AllIds.Where(o => o != id && !Down.Contains(o)))
            for (int t = 0; t < ConfigFor(other).ElectionTicks; t++) Tick(other);
        Queue.RemoveAll(m => m.From != id);
        for (int t = 0; t < maxTicks; t++)
        {
            if (Nodes[id].Role == RaftRole.Leader) return t;
            Tick(id);
            DeliverAll();
        }
        Assert.Fail($"node {id} did not become leader within {maxTicks} ticks: {Nodes[id]}");
        return 0;
    }

    private bool IsSettledLeader(int id)
    {
        var n = Nodes[id];
        var disk = Disks[id];
        return n.Committed > 0 && disk.Entries.Count >= n.Committed && disk.Entries[(int)n.Committed - 1].Term == n.Term;
    }

    /// <summary>Proposes one command on <paramref name="leader"/> and returns its index (0 if refused).</summary>
    public long Propose(int leader, string command)
    {
        long index = Nodes[leader].Propose(new[] { System.Text.Encoding.UTF8.GetBytes(command) });
        AfterStep(leader);
        return index;
    }

    /// <summary>Commands (longer than 2 bytes, unlike no-ops and <see cref="Log"/> fillers) applied by a node, in order.</summary>
    public IReadOnlyList<string> AppliedCommands(int id) =>
        Disks[id].AppliedEntries.Where(e => e.Data.Length > 2)
            .Select(e => System.Text.Encoding.UTF8.GetString(e.Data)).ToList();

    public static string Describe(IEnumerable<LogEntry> entries) => string.Join(",", entries.Select(e => $"{e.Index}@{e.Term}"));
}
