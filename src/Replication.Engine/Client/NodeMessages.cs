namespace Replication.Engine.Client;

// Requests only nodes send to nodes over the client protocol (one node per process, Member/):
// forwarding to a shard leader, joining, and paging one shard. Layouts in docs/wire-protocol.md.

/// <summary>
/// <paramref name="Inner"/>, forwarded by the node a client reached to the node it believes can serve
/// it. The receiver serves it itself or refuses with the NotLeader error (and its leader hint); it
/// never forwards it again, so a request travels at most one node-to-node hop per attempt.
/// </summary>
internal sealed record ForwardedRequest(long CorrelationId, ClientRequest Inner) : ClientRequest(CorrelationId)
{
    public override ClientRequestType Type => ClientRequestType.Forwarded;
}

/// <summary>A new node asks to join, announcing the endpoint it listens on, the token that makes a retried join idempotent,
/// and the role and zone it registers with (a node already registered under the token keeps the ones it has).</summary>
internal sealed record JoinRequest(long CorrelationId, string Endpoint, Guid Token, NodeRole Role = NodeRole.Voter, string? Zone = null) : ClientRequest(CorrelationId)
{
    public override ClientRequestType Type => ClientRequestType.Join;
}

/// <summary>Up to <paramref name="Limit"/> keys of one shard starting with <paramref name="Prefix"/>, after <paramref name="After"/> (null: from the start),
/// of those hashing into [<paramref name="RangeStart"/>, <paramref name="RangeLast"/>] (the range the sender's shard map gives the shard).</summary>
internal sealed record ShardScanRequest(long CorrelationId, int Shard, ulong RangeStart, ulong RangeLast, string Prefix, string? After, int Limit, ReadConsistency Consistency, TimeSpan Timeout)
    : ClientRequest(CorrelationId)
{
    public override ClientRequestType Type => ClientRequestType.ShardScan;
}

/// <summary>The joining node's id, the cluster id, and the cluster metadata as JSON (Member/ClusterMetadata.cs).</summary>
internal sealed record JoinResponse(long CorrelationId, int NodeId, Guid ClusterId, string Metadata) : ClientResponse(CorrelationId, ClientRequestType.Join);

/// <summary>
/// An administrative operation (Cluster/ClusterNode.Admin.cs lists them): <paramref name="Operation"/> names
/// it, <paramref name="Json"/> carries its arguments, <paramref name="Blob"/> bulk bytes (file chunks, rows).
/// <paramref name="TargetNode"/>: 0 = any node may serve it; otherwise the receiving node forwards it to that
/// node (one hop) unless it is that node.
/// </summary>
internal sealed record AdminRequest(long CorrelationId, string Operation, int TargetNode, string Json, ReadOnlyMemory<byte> Blob) : ClientRequest(CorrelationId)
{
    public override ClientRequestType Type => ClientRequestType.Admin;
}

/// <summary>The answer to an <see cref="AdminRequest"/>: a JSON body and an optional blob.</summary>
internal sealed record AdminResponse(long CorrelationId, string Json, ReadOnlyMemory<byte> Blob) : ClientResponse(CorrelationId, ClientRequestType.Admin);
