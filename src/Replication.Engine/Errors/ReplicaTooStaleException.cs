namespace Replication.Engine;

/// <summary>
/// A Stale read with a lag bound (Get-ReplicationKey -MaxLag) reached a replica further behind its shard's leader than
/// the bound allows; nothing was read. The read is not sent on to the leader: the caller asked for a replica read and
/// chooses whether to retry later or pay for a leader read (-Consistency Linearizable or Lease).
/// </summary>
public sealed class ReplicaTooStaleException : ReplicationException
{
    /// <summary>The stable ErrorId.</summary>
    public const string Id = "ReplicaTooStale";

    public ReplicaTooStaleException(int node, int shard, long? lagEntries, long maxLag)
        : this(lagEntries is { } lag
            ? $"Node {node}'s replica of shard {shard} is {lag} entries behind, more than the {maxLag} allowed (-MaxLag)."
            : $"Node {node} does not know how far its replica of shard {shard} is behind (it has not heard from a peer hosting the shard in the last 2 s: just started, or cut off), so it cannot promise the {maxLag} entries allowed (-MaxLag).",
            node, shard, lagEntries, maxLag)
    {
    }

    /// <summary>Rebuilds the error as it came over the wire (Client/ErrorCodec.cs).</summary>
    public ReplicaTooStaleException(string message, int node, int shard, long? lagEntries, long maxLag) : base(message)
    {
        Node = node;
        Shard = shard;
        LagEntries = lagEntries;
        MaxLag = maxLag;
    }

    public override string ErrorId => Id;
    public override ReplicationErrorKind Kind => ReplicationErrorKind.Unavailable;
    /// <summary>The node whose replica refused.</summary>
    public int Node { get; }
    public int Shard { get; }
    /// <summary>How many entries the replica had not applied yet; null when the replica did not know.</summary>
    public long? LagEntries { get; }
    public long MaxLag { get; }
}
