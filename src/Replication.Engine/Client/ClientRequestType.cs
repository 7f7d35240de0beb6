namespace Replication.Engine.Client;

/// <summary>
/// Kind of a client request (the byte after the correlation id; docs/wire-protocol.md, "Client
/// protocol"). A response echoes its request's type. On the wire: explicit, append-only values;
/// anything else is malformed.
/// </summary>
public enum ClientRequestType : byte
{
    Write = 1,
    Get = 2,
    Scan = 3,
    ScanNext = 4,
    ScanClose = 5,
    Status = 6,
    WaitForLeaders = 7,
    StopNode = 8,
    StartNode = 9,
    /// <summary>Node to node: another request, forwarded once by the node a client reached; the receiver serves it itself or refuses (NotLeader), never forwards it again.</summary>
    Forwarded = 10,
    /// <summary>Node to node: a new node asks to join the cluster (routed to the metadata leader).</summary>
    Join = 11,
    /// <summary>Node to node: one page of one shard's keys by prefix, after a given key (stateless paging).</summary>
    ShardScan = 12,
    /// <summary>An administrative operation named by a string, with a JSON body and an optional binary blob
    /// (backups, consistency checks, node rebuilds; Cluster/ClusterNode.Admin.cs), optionally for one node.</summary>
    Admin = 13,
}
