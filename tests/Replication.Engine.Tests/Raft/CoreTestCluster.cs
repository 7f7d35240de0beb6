using System.Text;
using Replication.Engine.Raft;
using Xunit;

namespace Replication.Engine.Tests.Raft.Core2;

/// <summary>
/// A small deterministic host for several <see cref="RaftNode"/>s of one group, for the snapshot,
/// membership and flow-control tests: in-memory durable storage per node (hard state, log, snapshot
/// metadata and data), a FIFO network with cut links and drop filters, and a state machine that is
/// the list of applied commands. It follows the Ready contract: install snapshot, persist, send,
/// apply, Advance. Snapshot messages are "streamed" by copying the leader's stored snapshot data,
/// then stepped into the follower, then reported to the leader (unless <see cref="AutoSnapshot"/>
/// is off). Logical time only; every loop is bounded. Not thread-safe.
/// </summary>
internal sealed class CoreTestCluster
{
    public sealed class Host
    {
        public required RaftNode Node;
        public required RaftConfig Config;
        public HardState State = HardState.Empty;
        public readonly List<LogEntry> Log = new();
        public SnapshotMetadata? Snapshot;
        public List<(long Index, string Command)> SnapshotData = new();
        /// <summary>The state machine: applied commands, in order, with their index.</summary>
        public List<(long Index, string Command)> Applied = new();
        public long AppliedIndex;
        public readonly List<SnapshotMetadata> InstalledSnapshots = new();
        /// <summary>Data received by "streaming" for a Snapshot message, keyed by snapshot index.</summary>
        public readonly Dictionary<long, List<(long Index, string Command)>> Staged = new();
        public bool Down;
    }

    private readonly Func<RaftConfig, RaftConfig> _configure;
    private readonly Random _random;
    private readonly Queue<RaftMessage> _network = new();
    private readonly HashSet<(int, int)> _cut = new();

    public CoreTestCluster(int[] voters, int seed = 1, int[]? learners = null, Func<RaftConfig, RaftConfig>? configure = null)
    {
        _configure = configure ?? (c => c);
        _random = new Random(seed);
        Bootstrap = (voters, learners ?? Array.Empty<int>());
        foreach (int id in voters.Concat(learners ?? Array.Empty<int>())) AddHost(id, voters, learners ?? Array.Empty<int>());
    }

    public (int[] Voters, int[] Learners) Bootstrap { get; }
    public SortedDictionary<int, Host> Hosts { get; } = new();
    public bool AutoSnapshot { get; set; } = true;
    /// <summary>Messages for which this returns true are dropped.</summary>
    public Func<RaftMessage, bool> Drop { get; set; } = _ => false;
    /// <summary>Every message that left a node, in order (for assertions).</summary>
    public List<RaftMessage> Sent { get; } = new();
    /// <summary>Snapshot messages held back while <see cref="AutoSnapshot"/> is off.</summary>
    public List<RaftMessage> HeldSnapshots { get; } = new();

    public RaftNode this[int id] => Hosts[id].Node;

    /// <summary>Creates a node that joins an existing group: no membership and an empty log.</summary>
    public Host AddJoiningNode(int id) => AddHost(id, Array.Empty<int>(), Array.Empty<int>());

    private Host AddHost(int id, int[] voters, int[] learners)
    {
        var config = _configure(new RaftConfig
        {
            Id = id,
            Voters = voters,
            Learners = learners,
            ElectionTicks = 10,
            HeartbeatTicks = 1,
            Random = new Random(_random.Next()),
        });
        var host = new Host { Node = new RaftNode(config, HardState.Empty, Array.Empty<LogEntry>()), Config = config };
        Hosts[id] = host;
        return host;
    }

    /// <summary>Rebuilds node <paramref name="id"/> from its storage (snapshot metadata, log, hard state, applied index).</summary>
    public RaftNode Restart(int id)
    {
        var h = Hosts[id];
        var config = h.Config with { Applied = h.AppliedIndex, Random = new Random(_random.Next()) };
        h.Node = new RaftNode(config, h.State, h.Log.ToList(), h.Snapshot);
        h.Down = false;
        return h.Node;
    }

    public void Cut(int a, int b) { _cut.Add((a, b)); _cut.Add((b, a)); }
    public void Isolate(int a) { foreach (int b in Hosts.Keys) if (b != a) Cut(a, b); }
    public void Heal() => _cut.Clear();

    /// <summary>Makes <paramref name="id"/> campaign now (a TimeoutNow from nobody) and settles.</summary>
    public void Campaign(int id)
    {
        var n = this[id];
        n.Step(new RaftMessage { Type = MessageType.TimeoutNow, Group = n.Group, From = 0, To = id, Term = n.Term });
        Settle();
    }

    public RaftNode Leader() => Hosts.Values.Select(h => h.Node).Single(n => n.Role == RaftRole.Leader && !Hosts[n.Id].Down);

    public long Propose(int leader, string command)
    {
        long index = this[leader].Propose(new[] { Encoding.UTF8.GetBytes(command) });
        Settle();
        return index;
    }

    public long ProposeConfChange(int leader, ConfChangeType type, int node)
    {
        long index = this[leader].ProposeConfChange(new ConfChange(type, node));
        Settle();
        return index;
    }

    /// <summary>Host side of compaction: snapshot the state machine at its applied index, then Compact.</summary>
    public void Compact(int id)
    {
        var h = Hosts[id];
        h.SnapshotData = h.Applied.ToList();
        h.Node.Compact(h.AppliedIndex);
        h.Snapshot = h.Node.LastSnapshot;
        Assert.Equal(h.AppliedIndex, h.Snapshot.Index);
        h.Log.RemoveAll(e => e.Index <= h.Snapshot.Index);
    }

    public void Tick(int ticks = 1)
    {
        for (int t = 0; t < ticks; t++)
        {
            foreach (var h in Hosts.Values) if (!h.Down) h.Node.Tick();
            Settle();
        }
    }

    /// <summary>Processes Readies and delivers messages until nothing moves (bounded).</summary>
    public void Settle()
    {
        for (int round = 0; round < 10_000; round++)
        {
            bool busy = false;
            foreach (var h in Hosts.Values)
            {
                if (h.Down || !h.Node.HasReady) continue;
                busy = true;
                Process(h);
            }
            if (_network.Count > 0)
            {
                busy = true;
                Deliver(_network.Dequeue());
            }
            if (!busy) return;
        }
        throw new InvalidOperationException("cluster did not settle");
    }

    private void Process(Host h)
    {
        var ready = h.Node.GetReady();
        if (ready.Snapshot is { } snap)
        {
            h.InstalledSnapshots.Add(snap);
            h.Applied = snap.Index == 0 ? new() : h.Staged[snap.Index].ToList();
            h.AppliedIndex = snap.Index;
            h.Snapshot = snap;
            h.SnapshotData = h.Applied.ToList();
            h.Log.Clear();
        }
        if (ready.Entries.Count > 0)
        {
            h.Log.RemoveAll(e => e.Index >= ready.Entries[0].Index);
            h.Log.AddRange(ready.Entries);
        }
        if (ready.HardState is { } hs) h.State = hs;
        foreach (var m in ready.Messages)
        {
            Sent.Add(m);
            _network.Enqueue(m);
        }
        foreach (var e in ready.CommittedEntries)
        {
            Assert.Equal(h.AppliedIndex + 1, e.Index);
            if (e.Type == EntryType.Normal && e.Data.Length > 0) h.Applied.Add((e.Index, Encoding.UTF8.GetString(e.Data)));
            h.AppliedIndex = e.Index;
        }
        h.Node.Advance(ready);
    }

    private void Deliver(RaftMessage m)
    {
        if (!Hosts.TryGetValue(m.To, out var to) || to.Down || Hosts[m.From].Down || _cut.Contains((m.From, m.To)) || Drop(m)) return;
        if (m.Type == MessageType.Snapshot)
        {
            if (!AutoSnapshot)
            {
                HeldSnapshots.Add(m);
                return;
            }
            StreamSnapshot(m, succeeded: true);
            return;
        }
        to.Node.Step(m);
    }

    /// <summary>Host side of InstallSnapshot: copy the leader's snapshot data to the follower, step the message, report.</summary>
    public void StreamSnapshot(RaftMessage m, bool succeeded)
    {
        var from = Hosts[m.From];
        if (succeeded)
        {
            Assert.Equal(from.Snapshot?.Index ?? 0, m.Index);
            Hosts[m.To].Staged[m.Index] = from.SnapshotData.ToList();
            Hosts[m.To].Node.Step(m);
        }
        from.Node.ReportSnapshot(m.To, succeeded, m.Index);
        Settle();
    }

    public static string[] Commands(Host h) => h.Applied.Select(a => a.Command).ToArray();

    /// <summary>Every node's applied commands are a prefix of the longest one's (State Machine Safety, paper 5.4.3).</summary>
    public void AssertAppliedPrefixes()
    {
        var longest = Hosts.Values.Select(Commands).OrderByDescending(c => c.Length).First();
        foreach (var h in Hosts.Values) Assert.Equal(longest.Take(h.Applied.Count), Commands(h));
    }
}
