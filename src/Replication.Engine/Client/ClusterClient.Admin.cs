using Replication.Engine.Cluster;

namespace Replication.Engine.Client;

/// <summary>Administrative operations over the client protocol (Cluster/ClusterNode.Admin.cs), and replica comparison.</summary>
public partial class ClusterClient
{
    /// <summary>
    /// Calls an administrative operation on the node this client is connected to, or (<paramref name="targetNode"/>
    /// not 0) on that node through it. Administrative reads are retried on another connection when one breaks; the
    /// operations that change something are idempotent by design (ids chosen by the caller).
    /// </summary>
    internal async Task<(T Answer, ReadOnlyMemory<byte> Blob)> AdminAsync<T>(string operation, int targetNode, object args, TimeSpan timeout, CancellationToken ct,
        ReadOnlyMemory<byte> blob = default)
    {
        string json = WireJson.Serialize(args);
        var response = (AdminResponse)await CallAsync(id => new AdminRequest(id, operation, targetNode, json, blob), idempotent: true, timeout + _options.NetworkMargin, ct).ConfigureAwait(false);
        return (WireJson.Deserialize<T>(response.Json, operation + " answer"), response.Blob);
    }

    public async Task<IReadOnlyList<ReplicationConsistency>> CheckConsistencyAsync(int? shard, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        if (shard is int one && !GetShards().Any(s => s.Id == one)) throw new ShardNotFoundException(one) { Target = one };
        var (results, _) = await AdminAsync<ReplicationConsistency[]>(AdminOps.ConsistencyCheck, 0, new ConsistencyArgs(shard, (long)timeout.TotalMilliseconds), timeout, cancellationToken).ConfigureAwait(false);
        return results.Select(r => r with { Cluster = Name }).ToArray();
    }
}
