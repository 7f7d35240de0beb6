using Replication.Engine.Cluster;
using Replication.Engine.Transport;

namespace Replication.Engine.Client;

/// <summary>
/// Encodes and decodes the payloads of <see cref="FrameType.ClientRequest"/> and
/// <see cref="FrameType.ClientResponse"/> frames (layouts in docs/wire-protocol.md, "Client protocol").
/// Decoders check every count and length against the bytes that remain before allocating, accept
/// only known enum values, and require the payload to be consumed exactly; anything else is a
/// <see cref="ProtocolException"/> (MalformedPayload) and nothing else escapes. Stateless, thread-safe.
/// </summary>
internal static class ClientCodec
{
    /// <summary>Longest timeout a request may carry (one day); longer is malformed.</summary>
    public const long MaxTimeoutMs = 24L * 3600 * 1000;
    /// <summary>Most keys a scan page may be asked for.</summary>
    public const int MaxPageSize = 10_000;

    private const byte Ok = 0, Failed = 1;

    // ---- requests ----

    public static byte[] EncodeRequest(ClientRequest request)
    {
        var w = new WireWriter();
        w.I64(request.CorrelationId);
        if (request is ForwardedRequest forwarded)
        {
            // [type Forwarded][the inner request's type and body]; the outer correlation id is the one answered.
            w.U8((byte)ClientRequestType.Forwarded);
            request = forwarded.Inner is ForwardedRequest ? throw new ArgumentException("A forwarded request cannot be forwarded again.", nameof(request)) : forwarded.Inner;
        }
        w.U8((byte)request.Type);
        switch (request)
        {
            case WriteRequest r:
                w.U8((byte)r.Concern);
                w.I64(Ms(r.Timeout));
                w.U32((uint)r.Writes.Count);
                foreach (var kw in r.Writes)
                {
                    w.String(kw.Key);
                    w.NullableString(kw.Value);
                    w.Bool(kw.ExpectedVersion is not null);
                    if (kw.ExpectedVersion is long v) w.I64(v);
                    w.Bool(kw.Version is not null);
                    if (kw.Version is long version) w.I64(version);
                }
                break;
            case GetRequest r:
                w.String(r.Key);
                w.U8((byte)r.Consistency);
                w.I64(Ms(r.Timeout));
                w.I64(r.MaxLag ?? -1);
                break;
            case ScanRequest r:
                w.String(r.Prefix);
                w.U8((byte)r.Consistency);
                w.I64(Ms(r.Timeout));
                w.I32(r.PageSize);
                break;
            case ScanNextRequest r: w.I64(r.ScanId); break;
            case ScanCloseRequest r: w.I64(r.ScanId); break;
            case StatusRequest: break;
            case WaitForLeadersRequest r:
                w.I32(r.Shard ?? -1);
                w.I64(Ms(r.Timeout));
                break;
            case StopNodeRequest r:
                w.I32(r.NodeId);
                w.Bool(r.Kill);
                break;
            case StartNodeRequest r: w.I32(r.NodeId); break;
            case JoinRequest r:
                w.String(r.Endpoint);
                w.Guid(r.Token);
                w.U8((byte)r.Role);
                w.NullableString(r.Zone);
                break;
            case AdminRequest r:
                w.String(r.Operation);
                w.I32(r.TargetNode);
                w.String(r.Json);
                w.Bytes(r.Blob.Span);
                break;
            case ShardScanRequest r:
                w.I32(r.Shard);
                w.I64((long)r.RangeStart);
                w.I64((long)r.RangeLast);
                w.String(r.Prefix);
                w.NullableString(r.After);
                w.I32(r.Limit);
                w.U8((byte)r.Consistency);
                w.I64(Ms(r.Timeout));
                break;
            default: throw new ArgumentException($"Unknown request {request.GetType().Name}.", nameof(request));
        }
        return w.ToArray();
    }

    /// <exception cref="ProtocolException">The payload does not parse.</exception>
    public static ClientRequest DecodeRequest(ReadOnlySpan<byte> payload)
    {
        var r = new WireReader(payload);
        long id = r.ReadInt64();
        byte type = r.ReadByte();
        bool forwarded = type == (byte)ClientRequestType.Forwarded;
        if (forwarded)
        {
            type = r.ReadByte();
            if (type == (byte)ClientRequestType.Forwarded) throw WireReader.Malformed("A forwarded request inside a forwarded request.");
        }
        ClientRequest request = type switch
        {
            (byte)ClientRequestType.Write => DecodeWrite(ref r, id),
            (byte)ClientRequestType.Get => new GetRequest(id, r.ReadString("key"), Consistency(ref r), Timeout(ref r), MaxLag(ref r)),
            (byte)ClientRequestType.Scan => new ScanRequest(id, r.ReadString("prefix"), Consistency(ref r), Timeout(ref r), PageSize(ref r)),
            (byte)ClientRequestType.ScanNext => new ScanNextRequest(id, r.ReadInt64()),
            (byte)ClientRequestType.ScanClose => new ScanCloseRequest(id, r.ReadInt64()),
            (byte)ClientRequestType.Status => new StatusRequest(id),
            (byte)ClientRequestType.WaitForLeaders => new WaitForLeadersRequest(id, ShardOrAll(ref r), Timeout(ref r)),
            (byte)ClientRequestType.StopNode => new StopNodeRequest(id, r.ReadInt32(), r.ReadBool()),
            (byte)ClientRequestType.StartNode => new StartNodeRequest(id, r.ReadInt32()),
            (byte)ClientRequestType.Join => new JoinRequest(id, r.ReadString("endpoint"), r.ReadGuid(), Role(ref r), r.ReadBool() ? r.ReadString("zone") : null),
            (byte)ClientRequestType.Admin => new AdminRequest(id, r.ReadString("operation"), r.ReadInt32(), r.ReadString("admin body"), r.ReadByteString("admin blob")),
            (byte)ClientRequestType.ShardScan => new ShardScanRequest(id, r.ReadInt32(), (ulong)r.ReadInt64(), (ulong)r.ReadInt64(), r.ReadString("prefix"), r.ReadBool() ? r.ReadString("after") : null,
                PageSize(ref r), Consistency(ref r), Timeout(ref r)),
            _ => throw WireReader.Malformed($"Unknown client request type {type}."),
        };
        r.EnsureEnd("client request");
        return forwarded ? new ForwardedRequest(id, request) : request;
    }

    private static WriteRequest DecodeWrite(ref WireReader r, long id)
    {
        byte concern = r.ReadByte();
        if (concern > (byte)WriteConcern.Leader) throw WireReader.Malformed($"Unknown write concern {concern}.");
        var timeout = Timeout(ref r);
        int count = r.ReadCount(7, "write");
        var writes = new KeyWrite[count];
        for (int i = 0; i < count; i++)
        {
            string key = r.ReadString("key");
            string? value = r.ReadBool() ? r.ReadString("value") : null;
            long? expected = r.ReadBool() ? r.ReadInt64() : null;
            long? version = r.ReadBool() ? r.ReadInt64() : null;
            if (version <= 0 || (version is not null && value is null)) throw WireReader.Malformed($"Write {i}: a version is set only by a put, and must be positive.");
            writes[i] = new KeyWrite(key, value, expected) { Version = version };
        }
        return new WriteRequest(id, writes, (WriteConcern)concern, timeout);
    }

    // ---- responses ----

    public static byte[] EncodeResponse(ClientResponse response)
    {
        var w = new WireWriter();
        w.I64(response.CorrelationId);
        w.U8((byte)response.For);
        if (response is ErrorResponse e)
        {
            w.U8(Failed);
            Error(w, e.Error);
            return w.ToArray();
        }
        w.U8(Ok);
        switch (response)
        {
            case AckResponse: break;
            case WriteResponse r:
                w.U32((uint)r.Outcomes.Count);
                foreach (var o in r.Outcomes)
                {
                    if (o.Error is { } error)
                    {
                        w.U8(Failed);
                        Error(w, error);
                        continue;
                    }
                    w.U8(Ok);
                    w.Bool(o.Existed);
                    w.Bool(o.HasRecord);
                    w.I64(o.Version);
                    w.I32(o.Shard);
                    w.I64(o.Index);
                }
                break;
            case GetResponse r:
                w.Bool(r.Key is not null);
                if (r.Key is not null) Key(w, r.Key);
                break;
            case ScanPageResponse r:
                w.I64(r.ScanId);
                w.Bool(r.More);
                w.U32((uint)r.Keys.Count);
                foreach (var k in r.Keys) Key(w, k);
                break;
            case StatusResponse r:
                w.String(WireJson.Serialize(r.Status));
                break;
            case ShardsResponse r:
                w.String(WireJson.Serialize(r.Shards));
                break;
            case AdminResponse r:
                w.String(r.Json);
                w.Bytes(r.Blob.Span);
                break;
            case JoinResponse r:
                w.I32(r.NodeId);
                w.Guid(r.ClusterId);
                w.String(r.Metadata);
                break;
            default: throw new ArgumentException($"Unknown response {response.GetType().Name}.", nameof(response));
        }
        return w.ToArray();
    }

    /// <summary>Decodes a response. Records get <paramref name="cluster"/> as their Cluster (a status response uses the name it carries).</summary>
    /// <exception cref="ProtocolException">The payload does not parse.</exception>
    public static ClientResponse DecodeResponse(ReadOnlySpan<byte> payload, string cluster = "")
    {
        var r = new WireReader(payload);
        long id = r.ReadInt64();
        byte typeByte = r.ReadByte();
        if (typeByte is < (byte)ClientRequestType.Write or > (byte)ClientRequestType.Admin or (byte)ClientRequestType.Forwarded)
            throw WireReader.Malformed($"Unknown client response type {typeByte}.");
        var type = (ClientRequestType)typeByte;
        byte status = r.ReadByte();
        ClientResponse response;
        if (status == Failed) response = new ErrorResponse(id, type, Error(ref r));
        else if (status != Ok) throw WireReader.Malformed($"Unknown response status {status}.");
        else response = type switch
        {
            ClientRequestType.Write => DecodeWriteResponse(ref r, id),
            ClientRequestType.Get => new GetResponse(id, r.ReadBool() ? Key(ref r, cluster) : null),
            ClientRequestType.Scan or ClientRequestType.ScanNext or ClientRequestType.ShardScan => DecodePage(ref r, id, type, cluster),
            ClientRequestType.Join => new JoinResponse(id, r.ReadInt32(), r.ReadGuid(), r.ReadString("metadata")),
            ClientRequestType.Status => new StatusResponse(id, WireJson.Deserialize<ClusterStatus>(r.ReadString("status"), "status")),
            ClientRequestType.WaitForLeaders => new ShardsResponse(id, WireJson.Deserialize<ReplicationShard[]>(r.ReadString("shards"), "shards")
                .Select(x => x with { Cluster = cluster }).ToArray()),
            ClientRequestType.Admin => new AdminResponse(id, r.ReadString("admin body"), r.ReadByteString("admin blob")),
            _ => new AckResponse(id, type),
        };
        r.EnsureEnd("client response");
        return response;
    }

    private static WriteResponse DecodeWriteResponse(ref WireReader r, long id)
    {
        int count = r.ReadCount(10, "write outcome");
        var outcomes = new WriteOutcome[count];
        for (int i = 0; i < count; i++)
        {
            byte status = r.ReadByte();
            outcomes[i] = status switch
            {
                Ok => new WriteOutcome(null, r.ReadBool(), r.ReadBool(), r.ReadInt64(), r.ReadInt32(), r.ReadInt64()),
                Failed => new WriteOutcome(Error(ref r), false, false, 0, 0, 0),
                _ => throw WireReader.Malformed($"Unknown write outcome {status}."),
            };
        }
        return new WriteResponse(id, outcomes);
    }

    private static ScanPageResponse DecodePage(ref WireReader r, long id, ClientRequestType type, string cluster)
    {
        long scanId = r.ReadInt64();
        bool more = r.ReadBool();
        int count = r.ReadCount(40, "key");
        var keys = new ReplicationKey[count];
        for (int i = 0; i < count; i++) keys[i] = Key(ref r, cluster);
        return new ScanPageResponse(id, type, scanId, more, keys);
    }

    // ---- parts ----

    private static void Error(WireWriter w, RemoteError e)
    {
        w.String(e.ErrorId);
        w.U8((byte)e.Kind);
        w.String(e.Message);
        var details = e.Details ?? new Dictionary<string, string>();
        w.U32((uint)details.Count);
        foreach (var (name, value) in details)
        {
            w.String(name);
            w.String(value);
        }
    }

    private static RemoteError Error(ref WireReader r)
    {
        string id = r.ReadString("error id");
        byte kind = r.ReadByte();
        if (kind > (byte)ReplicationErrorKind.Unauthorized) throw WireReader.Malformed($"Unknown error kind {kind}.");
        string message = r.ReadString("error message");
        int count = r.ReadCount(8, "error detail");
        var details = new Dictionary<string, string>(count);
        for (int i = 0; i < count; i++) details[r.ReadString("detail name")] = r.ReadString("detail value");
        return new RemoteError(id, (ReplicationErrorKind)kind, message, details);
    }

    private static void Key(WireWriter w, ReplicationKey k)
    {
        w.String(k.Key);
        w.String(k.Value);
        w.I64(k.Version);
        w.I32(k.Shard);
        w.I64(k.Index);
        w.I32(k.ReadFrom ?? 0);     // node ids start at 1: 0 = not a stale read
        w.I64(k.LagEntries ?? -1);
    }

    private static ReplicationKey Key(ref WireReader r, string cluster)
    {
        var key = new ReplicationKey(r.ReadString("key"), r.ReadString("value"), r.ReadInt64(), r.ReadInt32(), r.ReadInt64()) { Cluster = cluster };
        int readFrom = r.ReadInt32();
        long lag = r.ReadInt64();
        return readFrom == 0 ? key : key with { ReadFrom = readFrom, LagEntries = lag < 0 ? null : lag };
    }

    private static long? MaxLag(ref WireReader r)
    {
        long n = r.ReadInt64();
        return n < 0 ? null : n;
    }

    private static long Ms(TimeSpan timeout) => Math.Clamp((long)Math.Ceiling(timeout.TotalMilliseconds), 1, MaxTimeoutMs);

    private static TimeSpan Timeout(ref WireReader r)
    {
        long ms = r.ReadInt64();
        if (ms < 1 || ms > MaxTimeoutMs) throw WireReader.Malformed($"Timeout of {ms} ms is outside 1..{MaxTimeoutMs}.");
        return TimeSpan.FromMilliseconds(ms);
    }

    private static ReadConsistency Consistency(ref WireReader r)
    {
        byte c = r.ReadByte();
        return c <= (byte)ReadConsistency.Stale ? (ReadConsistency)c : throw WireReader.Malformed($"Unknown read consistency {c}.");
    }

    private static NodeRole Role(ref WireReader r)
    {
        byte role = r.ReadByte();
        return role <= (byte)NodeRole.Learner ? (NodeRole)role : throw WireReader.Malformed($"Unknown node role {role}.");
    }

    private static int PageSize(ref WireReader r)
    {
        int n = r.ReadInt32();
        return n is >= 1 and <= MaxPageSize ? n : throw WireReader.Malformed($"Page size {n} is outside 1..{MaxPageSize}.");
    }

    private static int? ShardOrAll(ref WireReader r)
    {
        int s = r.ReadInt32();
        return s == -1 ? null : s;
    }
}
