using Replication.Engine.Client;
using Replication.Engine.Cluster;
using Replication.Engine.Transport;

/// <summary>
/// Replication through THE client (ClusterClient): one ClusterClient, so one TCP connection, per load client,
/// as every application instance or shell would have. The node a client dials forwards each request to the
/// shard's leader when it is not the leader itself; so "leader" placement (every client on the node that
/// leads the most shards) is the best case of today's client, and "spread" placement shows the forwarding hop.
/// A client that routes to leaders itself will show as the two placements converging.
/// For "embedded", the target also runs the three nodes in this process (EmbeddedCluster).
/// </summary>
internal sealed class ReplicationTarget : IKvTarget
{
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(10);
    private readonly ClusterSecret _secret;
    private readonly int _expectedNodes;
    private EmbeddedCluster? _embedded;
    private string[] _endpoints;
    private string[] _order = [];
    private bool _spread;
    private ClusterClient? _admin;

    private ReplicationTarget(string[] endpoints, ClusterSecret secret, int expectedNodes, EmbeddedCluster? embedded)
    {
        _endpoints = endpoints;
        _secret = secret;
        _expectedNodes = expectedNodes;
        _embedded = embedded;
    }

    public static ReplicationTarget Remote(string[] endpoints, ClusterSecret secret) => new(endpoints, secret, endpoints.Length, null);

    /// <summary>Starts a 3-node embedded cluster (4 shards, replication factor 3) in this process, reachable with <paramref name="secret"/>.</summary>
    public static async Task<ReplicationTarget> EmbeddedAsync(string path, ClusterSecret secret, CancellationToken cancellationToken)
    {
        var cluster = await EmbeddedCluster.StartAsync(new ClusterOptions
        {
            Name = "bench-embedded",
            Path = path,
            NodeCount = 3,
            ShardCount = ClusterOptions.DefaultShardCount,
            ClusterSecret = secret,
        }, cancellationToken).ConfigureAwait(false);
        return new ReplicationTarget(cluster.Endpoints.ToArray(), secret, 3, cluster);
    }

    public async Task<string> PrepareAsync(bool spread, CancellationToken cancellationToken)
    {
        _spread = spread;
        _admin = await ClusterClient.ConnectAsync(_endpoints, _secret, "bench", cancellationToken: cancellationToken).ConfigureAwait(false);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        ClusterStatus status;
        while (true)
        {
            status = await _admin.StatusAsync(cancellationToken).ConfigureAwait(false);
            int replicas = Math.Min(status.ReplicationFactor, _expectedNodes);
            bool formed = status.Nodes.Count >= _expectedNodes
                && status.Shards.Count == status.ShardCount
                && status.Shards.All(s => s.Leader != 0 && s.Voters.Count == replicas && s.Learners.Count == 0);
            if (formed) break;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"The cluster did not form within 90 s: {Describe(status)}");
            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }
        var led = status.Shards.GroupBy(s => s.Leader).OrderByDescending(g => g.Count()).First();
        var leader = status.Nodes.First(n => n.Id == led.Key);
        _endpoints = status.Nodes.OrderBy(n => n.Id).Select(n => n.Endpoint).ToArray();
        _order = _endpoints.OrderBy(e => e == leader.Endpoint ? 0 : 1).ToArray();
        // The client learns the shard map from the node it dials and sends each key's requests to its shard's leader over
        // a connection of its own (ClusterClient.Routing.cs), so the dialled node only answers the status and the map.
        string where = (spread
            ? $"clients spread over the {_endpoints.Length} nodes round-robin"
            : $"every client dials node {leader.Id} ({leader.Endpoint}), which leads {led.Count()} of {status.ShardCount} shards")
            + "; key requests go from the client straight to each shard's leader";
        return $"{where}; {Describe(status)}";
    }

    public async Task<IKvClient> ConnectAsync(int index, CancellationToken cancellationToken)
    {
        // ClusterClient dials the first endpoint that answers and stays there; the rest are its failover list.
        var order = _spread ? _endpoints.Skip(index % _endpoints.Length).Concat(_endpoints.Take(index % _endpoints.Length)).ToArray() : _order;
        var client = await ClusterClient.ConnectAsync(order, _secret, "bench", cancellationToken: cancellationToken).ConfigureAwait(false);
        return new Client(client);
    }

    public async Task<string> LeadersAsync(CancellationToken cancellationToken)
    {
        var status = await _admin!.StatusAsync(cancellationToken).ConfigureAwait(false);
        return Describe(status);
    }

    /// <summary>
    /// Leader and term of every shard ("s0:n1@t2", "s1:none@t5" while it has no leader): a term that grew during a
    /// round means elections happened under load.
    /// </summary>
    private static string Describe(ClusterStatus status) =>
        $"shard leaders {string.Join(" ", status.Shards.OrderBy(s => s.Id).Select(s => $"s{s.Id}:{(s.Leader == 0 ? "none" : $"n{s.Leader}")}@t{s.Term}"))}";

    /// <summary>Closes the status connection, and stops and deletes the embedded cluster. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _admin, null) is { } admin) await admin.DisposeAsync().ConfigureAwait(false);
        if (Interlocked.Exchange(ref _embedded, null) is { } embedded) await embedded.RemoveAsync(deleteData: true).ConfigureAwait(false);
    }

    private sealed class Client(ClusterClient client) : IKvClient
    {
        public async Task PutAsync(string key, string value, CancellationToken cancellationToken)
        {
            var results = await client.WriteAsync([new KeyWrite(key, value)], WriteConcern.Majority, RequestTimeout, cancellationToken).ConfigureAwait(false);
            if (results[0].Error is { } error) throw error;
        }

        public async Task<bool> GetAsync(string key, CancellationToken cancellationToken) =>
            await client.GetAsync(key, ReadConsistency.Linearizable, RequestTimeout, cancellationToken).ConfigureAwait(false) is not null;

        public async Task<int> PutBatchAsync(IReadOnlyList<KeyValuePair<string, string>> batch, CancellationToken cancellationToken)
        {
            var writes = new KeyWrite[batch.Count];
            for (int i = 0; i < writes.Length; i++) writes[i] = new KeyWrite(batch[i].Key, batch[i].Value);
            var results = await client.WriteAsync(writes, WriteConcern.Majority, RequestTimeout, cancellationToken).ConfigureAwait(false);
            int ok = results.Count(r => r.Error is null);
            if (ok == 0 && results.Count > 0) throw results[0].Error!;
            return ok;
        }

        public ValueTask DisposeAsync() => client.DisposeAsync();
    }
}
