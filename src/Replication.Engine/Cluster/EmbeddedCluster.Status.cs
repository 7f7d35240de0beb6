using Replication.Engine.Raft;

namespace Replication.Engine.Cluster;

/// <summary>Status views: nodes and shards, built from the snapshots each node loop publishes.</summary>
public sealed partial class EmbeddedCluster
{
    public IReadOnlyList<ReplicationNode> GetNodes()
    {
        ThrowIfRemoved();
        return Enumerable.Range(1, _nodes.Length).Select(BuildNode).ToArray();
    }

    public ReplicationNode GetNode(int id)
    {
        ThrowIfRemoved();
        CheckNodeId(id);
        return BuildNode(id);
    }

    public IReadOnlyList<ReplicationShard> GetShards()
    {
        ThrowIfRemoved();
        var shards = new ReplicationShard[ShardCount];
        for (int s = 0; s < ShardCount; s++)
        {
            var leader = FindLeader(s);
            GroupStatus? st = null;
            if (leader is not null) leader.Status.TryGetValue(s, out st);
            var source = leader ?? _nodes.FirstOrDefault(n => n is not null && n.Status.ContainsKey(s));
            long keys = 0;
            try
            {
                keys = source?.Store.Count(s) ?? 0;
            }
            catch (RetryableException)
            {
                // the node stopped between the lookup and the count; report what is known
            }
            shards[s] = new ReplicationShard
            {
                Cluster = Name,
                Id = s,
                Leader = st?.Role == RaftRole.Leader ? leader!.Id : 0,
                Voters = _placement.ReplicasOf(s),
                Term = st?.Term ?? 0,
                CommitIndex = st?.Committed ?? 0,
                KeyCount = keys,
            };
        }
        return shards;
    }

    private ReplicationNode BuildNode(int id)
    {
        var host = _nodes[id - 1];
        string dataPath = System.IO.Path.Combine(_options.Path, $"node-{id}");
        string endpoint = host?.EndPoint?.ToString()
            ?? (_manifest.Ports.TryGetValue(id.ToString(), out int port) ? $"127.0.0.1:{port}" : "");
        if (host is null || !host.IsRunning)
        {
            // Stopped, or its loop stopped itself after a storage error (it serves nothing then).
            return new ReplicationNode
            {
                Cluster = Name,
                Id = id,
                Endpoint = endpoint,
                State = NodeState.Stopped,
                ShardsHosted = _placement.ShardsOn(id).Count(),
                DataPath = dataPath,
                SizeBytes = FolderSize(dataPath),
                StateReason = (host?.FailureReason ?? (_startFailures.TryGetValue(id, out var refused) ? refused : null)) is { } failure
                    ? "failed: " + failure
                    : "stopped",
            };
        }
        var status = host.Status.Values.ToArray();
        long lag = 0;
        foreach (var st in status)
        {
            var leader = FindLeader(st.Shard);
            if (leader is not null && leader.Status.TryGetValue(st.Shard, out var ls)) lag += Math.Max(0, ls.Committed - st.Applied);
        }
        var latest = status.OrderByDescending(s => s.StateSince).FirstOrDefault();
        return new ReplicationNode
        {
            Cluster = Name,
            Id = id,
            Endpoint = endpoint,
            State = NodeState.Running,
            ShardsLed = status.Count(s => s.Role == RaftRole.Leader),
            ShardsHosted = status.Length,
            Term = status.Length == 0 ? 0 : status.Max(s => s.Term),
            CommitIndex = status.Sum(s => s.Committed),
            AppliedIndex = status.Sum(s => s.Applied),
            LagEntries = lag,
            LastContact = status.Any(s => s.LastContact is null) ? null : status.Min(s => s.LastContact),
            DataPath = dataPath,
            SizeBytes = FolderSize(dataPath),
            StateReason = latest is null ? "running" : $"shard {latest.Shard}: {latest.StateReason}",
            StateSince = latest?.StateSince,
        };
    }

    private static long FolderSize(string path)
    {
        try
        {
            return Directory.Exists(path) ? new DirectoryInfo(path).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length) : 0;
        }
        catch (IOException)
        {
            return 0; // a file vanished while we looked (WAL checkpoint); size is informational
        }
    }
}
