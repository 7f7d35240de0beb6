using Replication.Engine.Cluster;

namespace Replication.Engine.Client;

/// <summary>Ring operations over the client protocol (Cluster/ClusterNode.Split.cs).</summary>
public partial class ClusterClient
{
    public async Task<IReadOnlyList<ReplicationShard>> SplitShardAsync(int shard, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        var before = GetShards().FirstOrDefault(s => s.Id == shard) ?? throw new ShardNotFoundException(shard) { Target = shard };
        var (answer, _) = await AdminAsync<SplitAnswer>(AdminOps.ShardSplit, 0, new SplitArgs(shard, (long)timeout.TotalMilliseconds, before.HashStart, before.HashEnd), timeout, cancellationToken).ConfigureAwait(false);
        var shards = GetShards();
        return new[] { answer.Shard, answer.NewShard }.Select(id => shards.First(s => s.Id == id)).ToArray();
    }
}
