using System.Globalization;

namespace Replication.Engine.Client;

/// <summary>
/// Engine errors across the wire: a node sends an error's id, kind, message and the fields of its typed exception;
/// the receiver rebuilds the same typed exception, so a caller of <see cref="ClusterClient"/> catches
/// <see cref="VersionConflictException"/> (with its ActualVersion) or <see cref="QuorumUnavailableException"/>
/// exactly as the node that raised it would. An id this side does not know arrives as a
/// <see cref="RemoteOperationException"/> with the same id and kind. Stateless, thread-safe.
/// </summary>
internal static class ErrorCodec
{
    public static RemoteError From(ReplicationException e)
    {
        var d = new Dictionary<string, string>();
        switch (e)
        {
            case VersionConflictException v: d["actual"] = Int(v.ActualVersion); break;
            case QuorumUnavailableException q: d["shard"] = Int(q.Shard); break;
            case NodeNotFoundException n: d["node"] = Int(n.NodeId); break;
            case ShardNotFoundException s: d["shard"] = Int(s.ShardId); break;
            case QuorumAtRiskException r: d["node"] = Int(r.NodeId); d["shard"] = Int(r.Shard); break;
            case NodeNotRunningException n: d["node"] = Int(n.Node); break;
            case ReplicationFactorAtRiskException f: d["node"] = Int(f.Node); break;
            case WrongShardException w: d["shard"] = Int(w.Shard); break;
            case ReplicaTooStaleException t:
                d["node"] = Int(t.Node);
                d["shard"] = Int(t.Shard);
                if (t.LagEntries is { } lag) d["lag"] = Int(lag); // absent: not known
                d["maxLag"] = Int(t.MaxLag);
                break;
            case DataPathInUseException p:
                d["path"] = p.Path;
                if (p.HolderProcessId is int pid) d["pid"] = Int(pid);
                break;
            case BackupCorruptException b: d["file"] = b.File; break;
            case BackupPathException b: d["path"] = b.Path; break;
        }
        if (e.Target is string or int or long) d["target"] = Convert.ToString(e.Target, CultureInfo.InvariantCulture)!;
        return new RemoteError(e.ErrorId, e.Kind, e.Message, d);
    }

    public static ReplicationException ToException(RemoteError r)
    {
        var d = r.Details ?? new Dictionary<string, string>();
        string m = r.Message;
        ReplicationException e = r.ErrorId switch
        {
            "VersionConflict" => new VersionConflictException(m, Long(d, "actual")),
            "QuorumUnavailable" => new QuorumUnavailableException(m, (int)Long(d, "shard")),
            "NodeNotFound" => new NodeNotFoundException(m, (int)Long(d, "node")),
            "ShardNotFound" => new ShardNotFoundException(m, (int)Long(d, "shard")),
            "QuorumAtRisk" => new QuorumAtRiskException(m, (int)Long(d, "node"), (int)Long(d, "shard")),
            "NodeNotRunning" => new NodeNotRunningException((int)Long(d, "node"), m),
            ReplicationFactorAtRiskException.Id => new ReplicationFactorAtRiskException((int)Long(d, "node"), m),
            WrongShardException.Id => new WrongShardException((int)Long(d, "shard"), m),
            ReplicaTooStaleException.Id => new ReplicaTooStaleException(m, (int)Long(d, "node"), (int)Long(d, "shard"), d.ContainsKey("lag") ? Long(d, "lag") : (long?)null, Long(d, "maxLag")),
            "DataPathInUse" => new DataPathInUseException(m, d.GetValueOrDefault("path", ""), d.ContainsKey("pid") ? (int)Long(d, "pid") : null),
            "BackupCorrupt" => new BackupCorruptException(d.GetValueOrDefault("file", ""), m),
            BackupPathException.PathInUse or BackupPathException.NotFound or BackupPathException.RestorePathInUse or BackupPathException.Incomplete
                or BackupPathException.Mismatch or BackupPathException.RestoreTargetNotEmpty => new BackupPathException(r.ErrorId, d.GetValueOrDefault("path", ""), m),
            InvalidKeyException.EmptyKey or InvalidKeyException.KeyTooLong or InvalidKeyException.ValueTooLarge or InvalidKeyException.InvalidPrefix or "InvalidVersion"
                => new InvalidKeyException(r.ErrorId, m),
            "ClusterNotRunning" => new ClusterNotRunningException(m, received: true),
            "NotSupportedRemotely" => new NotSupportedRemotelyException(m),
            "StorageCorrupt" => new StorageCorruptException(m),
            DiskFullException.Id => new DiskFullException(m),
            "AuthenticationFailed" => new AuthenticationFailedException(m),
            "EndpointUnreachable" => new EndpointUnreachableException(m),
            ClusterOptionsException.Invalid or ClusterOptionsException.PathMismatch or "InvalidEndpoint" or "ListenNotLoopback" => new ClusterOptionsException(r.ErrorId, m),
            "NodePathInUse" => new NodePathInUseException(m),
            _ => new RemoteOperationException(r.ErrorId, r.Kind, m),
        };
        if (d.TryGetValue("target", out var target)) e = WithTarget(e, target);
        return e;
    }

    private static ReplicationException WithTarget(ReplicationException e, string target)
    {
        e.SetTarget(long.TryParse(target, NumberStyles.Integer, CultureInfo.InvariantCulture, out long n) ? (n is >= int.MinValue and <= int.MaxValue ? (int)n : n) : target);
        return e;
    }

    private static string Int(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static long Long(IReadOnlyDictionary<string, string> d, string name) =>
        d.TryGetValue(name, out var s) && long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out long v) ? v : 0;
}
