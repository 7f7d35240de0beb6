namespace Replication;

/// <summary>
/// One entry of a node's event history (Get-ReplicationEvent): what happened, when, on which node, for which shard
/// (null: the node as a whole) and in which term, with a sentence a person can read. Each node keeps its own history
/// in events.db beside its stores (Storage/EventStore.cs), bounded and kept across restarts; the cluster's history is
/// the merge of every reachable node's, by time.
/// </summary>
public sealed record ReplicationEvent
{
    public string Cluster { get; init; } = "";
    public required DateTimeOffset Time { get; init; }
    /// <summary>The node that recorded the event (and observed it).</summary>
    public required int Node { get; init; }
    public int? Shard { get; init; }
    /// <summary>The shard's Raft term when the event was recorded; 0 for an event about the node as a whole.</summary>
    public long Term { get; init; }
    public required ReplicationEventType Type { get; init; }
    public required string Message { get; init; }
    /// <summary>Position in the recording node's history: increases with every event of that node, never reused.</summary>
    public long Sequence { get; init; }

    public override string ToString() => $"{Time:O} node {Node}{(Shard is int s ? $" shard {s}" : "")} {Type}: {Message}";
}
