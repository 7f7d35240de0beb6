using Replication.Engine.Cluster;

namespace Replication.Engine.Client;

// The client protocol's messages, as decoded by ClientCodec (layouts in docs/wire-protocol.md).
// Internal and grouped in one file on purpose: they are the codec's vocabulary, not API.
// Every request and response carries the client-chosen correlation id that pairs them, so a
// client may pipeline many requests on one connection.

internal abstract record ClientRequest(long CorrelationId)
{
    public abstract ClientRequestType Type { get; }
}

internal sealed record WriteRequest(long CorrelationId, IReadOnlyList<KeyWrite> Writes, WriteConcern Concern, TimeSpan Timeout) : ClientRequest(CorrelationId)
{
    public override ClientRequestType Type => ClientRequestType.Write;
}

/// <param name="MaxLag">For a Stale read: the most entries the serving replica may lag (null: no bound).</param>
internal sealed record GetRequest(long CorrelationId, string Key, ReadConsistency Consistency, TimeSpan Timeout, long? MaxLag = null) : ClientRequest(CorrelationId)
{
    public override ClientRequestType Type => ClientRequestType.Get;
}

/// <summary>Opens a server-side cursor (its id is this request's correlation id) and returns the first page.</summary>
internal sealed record ScanRequest(long CorrelationId, string Prefix, ReadConsistency Consistency, TimeSpan Timeout, int PageSize) : ClientRequest(CorrelationId)
{
    public override ClientRequestType Type => ClientRequestType.Scan;
}

/// <summary>The next page of cursor <paramref name="ScanId"/>. The server reads no further than the client asks: pull-based flow control.</summary>
internal sealed record ScanNextRequest(long CorrelationId, long ScanId) : ClientRequest(CorrelationId)
{
    public override ClientRequestType Type => ClientRequestType.ScanNext;
}

internal sealed record ScanCloseRequest(long CorrelationId, long ScanId) : ClientRequest(CorrelationId)
{
    public override ClientRequestType Type => ClientRequestType.ScanClose;
}

internal sealed record StatusRequest(long CorrelationId) : ClientRequest(CorrelationId)
{
    public override ClientRequestType Type => ClientRequestType.Status;
}

internal sealed record WaitForLeadersRequest(long CorrelationId, int? Shard, TimeSpan Timeout) : ClientRequest(CorrelationId)
{
    public override ClientRequestType Type => ClientRequestType.WaitForLeaders;
}

internal sealed record StopNodeRequest(long CorrelationId, int NodeId, bool Kill) : ClientRequest(CorrelationId)
{
    public override ClientRequestType Type => ClientRequestType.StopNode;
}

internal sealed record StartNodeRequest(long CorrelationId, int NodeId) : ClientRequest(CorrelationId)
{
    public override ClientRequestType Type => ClientRequestType.StartNode;
}

/// <summary>An engine error as it travels: its stable id, kind, message and the typed exception's fields (never a
/// stack trace), so the receiver rebuilds the same typed exception (<see cref="ErrorCodec"/>).</summary>
internal sealed record RemoteError(string ErrorId, ReplicationErrorKind Kind, string Message, IReadOnlyDictionary<string, string>? Details = null)
{
    public static RemoteError From(ReplicationException e) => ErrorCodec.From(e);
    public ReplicationException ToException() => ErrorCodec.ToException(this);
}

/// <summary>One write's outcome: an error, or success with the key's new version (no record for a delete or a Leader-concern write).</summary>
internal sealed record WriteOutcome(RemoteError? Error, bool Existed, bool HasRecord, long Version, int Shard, long Index);

internal abstract record ClientResponse(long CorrelationId, ClientRequestType For);

internal sealed record ErrorResponse(long CorrelationId, ClientRequestType For, RemoteError Error) : ClientResponse(CorrelationId, For);

/// <summary>Success without a body (ScanClose, StopNode, StartNode).</summary>
internal sealed record AckResponse(long CorrelationId, ClientRequestType For) : ClientResponse(CorrelationId, For);

internal sealed record WriteResponse(long CorrelationId, IReadOnlyList<WriteOutcome> Outcomes) : ClientResponse(CorrelationId, ClientRequestType.Write);

internal sealed record GetResponse(long CorrelationId, ReplicationKey? Key) : ClientResponse(CorrelationId, ClientRequestType.Get);

/// <summary>A page of a scan (For = Scan for the first, ScanNext after). <paramref name="More"/>: the cursor is still open.</summary>
internal sealed record ScanPageResponse(long CorrelationId, ClientRequestType For, long ScanId, bool More, IReadOnlyList<ReplicationKey> Keys) : ClientResponse(CorrelationId, For);

internal sealed record StatusResponse(long CorrelationId, ClusterStatus Status) : ClientResponse(CorrelationId, ClientRequestType.Status);

internal sealed record ShardsResponse(long CorrelationId, IReadOnlyList<ReplicationShard> Shards) : ClientResponse(CorrelationId, ClientRequestType.WaitForLeaders);
