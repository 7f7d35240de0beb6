using Replication.Engine;
using System.Diagnostics;
using Replication.Engine.Client;
using Replication.Engine.Cluster;
using Replication.Engine.Ring;
using Replication.Engine.Transport;

/// <summary>
/// Three Replication node processes (NodeRole) on loopback for the failover and timing scenarios, which kill,
/// pause and restart them one at a time: node 1 founds the cluster, nodes 2 and 3 join, and a killed node is
/// started again on its own folder and port (a restart, not a rejoin). Knows which process is which node id
/// (from the READY line). Every process is this bench's child (ChildProcess) and dies with it.
/// </summary>
internal sealed class NodeCluster : IAsyncDisposable
{
    private static readonly TimeSpan StartBound = TimeSpan.FromSeconds(90);
    private readonly string _folder;
    private readonly string _secret;
    private readonly int? _electionTicks;
    private readonly Action<string>? _echo;
    private readonly ChildProcess?[] _processes = new ChildProcess?[3];
    private ClusterClient? _admin;

    private NodeCluster(string folder, string secret, int? electionTicks, Action<string>? echo)
    {
        _folder = folder;
        _secret = secret;
        _electionTicks = electionTicks;
        _echo = echo;
        Endpoints = Servers.FreePorts(3).Select(p => $"127.0.0.1:{p}").ToArray();
    }

    public string[] Endpoints { get; }
    /// <summary>Node id of each process (index 0..2).</summary>
    public int[] NodeIds { get; } = new int[3];
    public ClusterSecret Secret => ClusterSecret.FromString(_secret);
    public int Pid(int index) => _processes[index]?.Pid ?? 0;

    public static async Task<NodeCluster> StartAsync(string folder, string secret, int? electionTicks, Action<string>? echo)
    {
        var cluster = new NodeCluster(folder, secret, electionTicks, echo);
        try
        {
            for (int i = 0; i < 3; i++) await cluster.StartNodeAsync(i, join: i > 0);
            await cluster.WaitHealthyAsync(StartBound);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    private async Task StartNodeAsync(int index, bool join)
    {
        var (file, prefix) = Servers.Self();
        var args = prefix.Concat(["node", "--path", Path.Combine(_folder, $"node{index + 1}"), "--listen", Endpoints[index]]).ToList();
        if (join) args.AddRange(["--join", Endpoints[0]]);
        if (_electionTicks is int ticks) args.AddRange(["--election-ticks", ticks.ToString()]);
        var child = await ChildProcess.StartAsync($"node{index + 1}", file, args, Servers.NodeEnvironment(_secret), _echo);
        _processes[index] = child;
        string ready = await child.WaitForLineAsync("READY ", StartBound);
        NodeIds[index] = int.Parse(ready[(ready.IndexOf("READY ", StringComparison.Ordinal) + 6)..].Trim());
    }

    public int IndexOf(int nodeId) => Array.IndexOf(NodeIds, nodeId);

    /// <summary>SIGKILL; returns once the process is gone.</summary>
    public void Kill(int index)
    {
        _processes[index]?.Dispose();
        _processes[index] = null;
    }

    public void Pause(int index) => Signals.Stop(Pid(index));
    public void Resume(int index) => Signals.Continue(Pid(index));

    /// <summary>Starts a killed node again on its folder and port, then waits until the whole cluster is healthy.</summary>
    public async Task RestartAsync(int index)
    {
        await StartNodeAsync(index, join: false);
        await WaitHealthyAsync(StartBound);
    }

    /// <summary>A client that dials process <paramref name="index"/> first (the others are its failover list).</summary>
    public Task<ClusterClient> ClientAsync(int index, CancellationToken cancellationToken = default) =>
        ClusterClient.ConnectAsync(Endpoints.Skip(index).Concat(Endpoints.Take(index)).ToArray(), Secret, "bench", cancellationToken: cancellationToken);

    /// <summary>The status as the first reachable node sees it.</summary>
    public async Task<ClusterStatus> StatusAsync(CancellationToken cancellationToken = default)
    {
        _admin ??= await ClusterClient.ConnectAsync(Endpoints, Secret, "bench", cancellationToken: cancellationToken);
        return await _admin.StatusAsync(cancellationToken);
    }

    /// <summary>Waits (bounded) until every node runs and every shard has a leader and three voters.</summary>
    public async Task<ClusterStatus> WaitHealthyAsync(TimeSpan bound)
    {
        var watch = Stopwatch.StartNew();
        string last = "no status";
        while (watch.Elapsed < bound)
        {
            try
            {
                var s = await StatusAsync();
                if (s.Nodes.Count == 3 && s.Nodes.All(n => n.State == NodeState.Running)
                    && s.Shards.Count > 0 && s.Shards.All(x => x.Leader != 0 && x.Voters.Count == 3 && x.Learners.Count == 0))
                    return s;
                last = $"nodes {string.Join(" ", s.Nodes.Select(n => $"{n.Id}:{n.State}"))}, shards {string.Join(" ", s.Shards.Select(x => $"{x.Id}:n{x.Leader}/{x.Voters.Count}v"))}";
            }
            catch (ReplicationException e) { last = e.Message; }
            await Task.Delay(100);
        }
        throw new TimeoutException($"The cluster was not healthy within {bound.TotalSeconds:0} s: {last}");
    }

    /// <summary>
    /// <paramref name="perShard"/> keys for each shard of <paramref name="status"/> (random 16-character keys whose hash
    /// falls in the shard's range), so a writer can aim at one shard.
    /// </summary>
    public static Dictionary<int, string[]> KeysByShard(ClusterStatus status, int perShard, int seed)
    {
        var random = new Random(seed);
        var keys = status.Shards.ToDictionary(s => s.Id, _ => new List<string>());
        while (keys.Values.Any(k => k.Count < perShard))
        {
            string key = "fo-" + string.Create(13, random, (span, r) => { for (int i = 0; i < span.Length; i++) span[i] = (char)('a' + r.Next(26)); });
            ulong hash = KeyHash.Of(key);
            var shard = status.Shards.First(s => hash >= s.HashStart && hash <= s.HashEnd);
            if (keys[shard.Id].Count < perShard) keys[shard.Id].Add(key);
        }
        return keys.ToDictionary(k => k.Key, k => k.Value.ToArray());
    }

    /// <summary>Kills every node process and deletes the folder. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _admin, null) is { } admin) await admin.DisposeAsync();
        for (int i = 0; i < 3; i++) Kill(i);
        try { if (Directory.Exists(_folder)) Directory.Delete(_folder, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
