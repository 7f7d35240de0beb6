using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Net.Client;

/// <summary>
/// etcd through its gRPC API (dotnet-etcd over Grpc.Net.Client): one GrpcChannel, so one HTTP/2 connection,
/// per load client, the same shape as one ClusterClient per client on the other side. A put is acknowledged
/// by etcd once it is committed (a majority persisted it in its fsynced WAL) and applied; a range request
/// without <c>serializable</c> is linearizable (ReadIndex through the leader). A batch is one transaction
/// (etcd's unit of several puts in one request; the members run with --max-txn-ops raised to the batch size).
/// </summary>
internal sealed class EtcdTarget : IKvTarget
{
    private readonly string[] _endpoints;
    private string[] _order = [];
    private bool _spread;
    private readonly List<GrpcChannel> _adminChannels = new();
    private Dictionary<ulong, string> _names = new();

    public EtcdTarget(string[] endpoints) => _endpoints = endpoints;

    private static GrpcChannel Channel(string endpoint) =>
        GrpcChannel.ForAddress("http://" + endpoint, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = false, PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan },
            DisposeHttpClient = true,
        });

    public async Task<string> PrepareAsync(bool spread, CancellationToken cancellationToken)
    {
        _spread = spread;
        var clients = _endpoints.Select(e =>
        {
            var channel = Channel(e);
            _adminChannels.Add(channel);
            return new EtcdClient(channel.CreateCallInvoker());
        }).ToArray();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            try
            {
                var statuses = await Task.WhenAll(clients.Select(c => c.StatusAsync(new StatusRequest(), cancellationToken: cancellationToken))).ConfigureAwait(false);
                ulong leader = statuses[0].Leader;
                if (leader != 0 && statuses.All(s => s.Leader == leader))
                {
                    var members = await clients[0].MemberListAsync(new MemberListRequest(), cancellationToken: cancellationToken).ConfigureAwait(false);
                    _names = members.Members.ToDictionary(m => m.ID, m => m.Name);
                    int at = Array.FindIndex(statuses, s => s.Header.MemberId == leader);
                    _order = _endpoints.Skip(at).Concat(_endpoints.Take(at)).ToArray();
                    string where = spread
                        ? $"clients spread over the {_endpoints.Length} members round-robin"
                        : $"every client on the leader {NameOf(leader)} ({_endpoints[at]})";
                    return $"{where}; etcd {statuses[0].Version}, leader {NameOf(leader)}";
                }
            }
            catch (Grpc.Core.RpcException) when (DateTime.UtcNow < deadline) { /* a member not up yet */ }
            if (DateTime.UtcNow > deadline) throw new TimeoutException("etcd did not elect a leader within 60 s.");
            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }
    }

    private string NameOf(ulong id) => _names.TryGetValue(id, out var n) ? n : id.ToString("x");

    public async Task<IKvClient> ConnectAsync(int index, CancellationToken cancellationToken)
    {
        string endpoint = _spread ? _endpoints[index % _endpoints.Length] : _order[0];
        var channel = Channel(endpoint);
        var client = new EtcdClient(channel.CreateCallInvoker());
        await client.StatusAsync(new StatusRequest(), cancellationToken: cancellationToken).ConfigureAwait(false); // connected and answered
        return new Client(channel, client);
    }

    public async Task<string> LeadersAsync(CancellationToken cancellationToken)
    {
        var status = await new EtcdClient(_adminChannels[0].CreateCallInvoker()).StatusAsync(new StatusRequest(), cancellationToken: cancellationToken).ConfigureAwait(false);
        return $"leader {NameOf(status.Leader)}, raft term {status.RaftTerm}";
    }

    /// <summary>Closes the status channels. Idempotent.</summary>
    public ValueTask DisposeAsync()
    {
        foreach (var c in _adminChannels) c.Dispose();
        _adminChannels.Clear();
        return ValueTask.CompletedTask;
    }

    private sealed class Client(GrpcChannel channel, EtcdClient client) : IKvClient
    {
        private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

        public async Task PutAsync(string key, string value, CancellationToken cancellationToken) =>
            await client.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = ByteString.CopyFromUtf8(value) },
                deadline: DateTime.UtcNow + Timeout, cancellationToken: cancellationToken).ConfigureAwait(false);

        public async Task<bool> GetAsync(string key, CancellationToken cancellationToken)
        {
            var response = await client.GetAsync(new RangeRequest { Key = ByteString.CopyFromUtf8(key) },
                deadline: DateTime.UtcNow + Timeout, cancellationToken: cancellationToken).ConfigureAwait(false);
            return response.Kvs.Count > 0;
        }

        public async Task<int> PutBatchAsync(IReadOnlyList<KeyValuePair<string, string>> batch, CancellationToken cancellationToken)
        {
            var txn = new TxnRequest();
            foreach (var (k, v) in batch)
                txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = ByteString.CopyFromUtf8(k), Value = ByteString.CopyFromUtf8(v) } });
            var response = await client.TransactionAsync(txn, deadline: DateTime.UtcNow + Timeout, cancellationToken: cancellationToken).ConfigureAwait(false);
            return response.Succeeded ? batch.Count : 0;
        }

        public ValueTask DisposeAsync()
        {
            client.Dispose();
            channel.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
