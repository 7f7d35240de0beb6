using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Replication.Engine.Client;
using Replication.Engine.Cluster;

namespace Replication.Engine.Tests.Transport;

/// <summary>
/// A stand-in for a cluster behind a node's client port: a dictionary, so transport tests can run
/// real client requests (writes, reads, status) through a TcpTransport without Raft. Thread-safe.
/// </summary>
internal sealed class InMemoryClientHandler(Guid clusterId) : IClientRequestHandler
{
    private readonly ConcurrentDictionary<string, ReplicationKey> _keys = new(StringComparer.Ordinal);

    public Task<IReadOnlyList<WriteResult>> WriteAsync(IReadOnlyList<KeyWrite> writes, WriteConcern concern, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var results = new List<WriteResult>();
        foreach (var write in writes)
        {
            bool existed = _keys.TryGetValue(write.Key, out var old);
            if (write.IsDelete)
            {
                _keys.TryRemove(write.Key, out _);
                results.Add(new WriteResult(write, null, existed, null));
                continue;
            }
            var record = new ReplicationKey(write.Key, write.Value!, (old?.Version ?? 0) + 1, 0, 1);
            _keys[write.Key] = record;
            results.Add(new WriteResult(write, record, existed, null));
        }
        return Task.FromResult<IReadOnlyList<WriteResult>>(results);
    }

    public Task<ReplicationKey?> GetAsync(string key, ReadConsistency consistency, TimeSpan timeout, CancellationToken cancellationToken, long? maxLag = null) =>
        Task.FromResult(_keys.TryGetValue(key, out var record) ? record : null);

    public async IAsyncEnumerable<ReplicationKey> ScanAsync(string prefix, ReadConsistency consistency, TimeSpan timeout, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await Task.Yield();
        foreach (var record in _keys.Values.Where(k => k.Key.StartsWith(prefix, StringComparison.Ordinal)).OrderBy(k => k.Key, StringComparer.Ordinal))
            yield return record;
    }

    public ClusterStatus GetStatus() => new(clusterId, "in-memory", 1, 1, [], [], []);

    public Task<IReadOnlyList<ReplicationShard>> WaitForLeadersAsync(int? shard, TimeSpan timeout, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ReplicationShard>>([]);

    public Task StopNodeAsync(int id, bool kill, Func<Task>? answer, CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task StartNodeAsync(int id, CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task<(int NodeId, Guid ClusterId, string Metadata)> JoinAsync(string endpoint, Guid token, NodeRole role, string? zone, CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task<(IReadOnlyList<ReplicationKey> Keys, bool More)> ScanShardAsync(int shard, ulong rangeStart, ulong rangeLast, string prefix, string? after, int limit,
        ReadConsistency consistency, TimeSpan timeout, CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task<(string Json, ReadOnlyMemory<byte> Blob)> AdminAsync(string operation, int targetNode, string json, ReadOnlyMemory<byte> blob, CancellationToken cancellationToken) =>
        throw new NotSupportedException();
}
