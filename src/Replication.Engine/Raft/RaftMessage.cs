namespace Replication.Engine.Raft;

/// <summary>
/// A message between two Raft nodes of one group. Immutable once built. Field meaning depends on
/// <see cref="Type"/> and follows etcd's raftpb.Message:
/// <list type="bullet">
/// <item>Append: <see cref="Index"/>/<see cref="LogTerm"/> are the index and term of the entry
/// before <see cref="Entries"/>; <see cref="Commit"/> is the leader's commit index.</item>
/// <item>AppendResponse: <see cref="Index"/> is the follower's last matching index when accepted;
/// when <see cref="Reject"/>, <see cref="Index"/> echoes the probe and <see cref="RejectHint"/> /
/// <see cref="LogTerm"/> give the follower's hint for fast backtracking.</item>
/// <item>Vote/PreVote: <see cref="Index"/>/<see cref="LogTerm"/> describe the candidate's last entry.</item>
/// <item>Heartbeat/HeartbeatResponse: <see cref="Context"/> carries a ReadIndex round id (0 = none).</item>
/// <item>AppendResponse/HeartbeatResponse: <see cref="Commit"/> is the sender's applied index;
/// in a HeartbeatResponse <see cref="Index"/> is the sender's last log index.</item>
/// <item>Snapshot: <see cref="Index"/>/<see cref="LogTerm"/> are the snapshot's last index and term,
/// <see cref="Voters"/>/<see cref="Learners"/> the membership at that index (the data travels out of
/// band, streamed by the host).</item>
/// <item>Append with <see cref="Index"/> 0: <see cref="Voters"/>/<see cref="Learners"/> carry the
/// group's bootstrap membership, so a joining node with no configuration of its own learns it.</item>
/// </list>
/// <see cref="Group"/> names the Raft group (shard): one connection carries messages of many groups.
/// </summary>
public sealed record RaftMessage
{
    public MessageType Type { get; init; }
    public int Group { get; init; }
    public int From { get; init; }
    public int To { get; init; }
    public long Term { get; init; }
    public long LogTerm { get; init; }
    public long Index { get; init; }
    public IReadOnlyList<LogEntry> Entries { get; init; } = Array.Empty<LogEntry>();
    public long Commit { get; init; }
    public bool Reject { get; init; }
    public long RejectHint { get; init; }
    public long Context { get; init; }
    /// <summary>Membership carried by Snapshot messages and by Append messages from index 0.</summary>
    public IReadOnlyList<int> Voters { get; init; } = Array.Empty<int>();
    public IReadOnlyList<int> Learners { get; init; } = Array.Empty<int>();
    /// <summary>
    /// SnapshotChunk only (the host's snapshot stream): the chunk's bytes, when they are not given as the one entry of
    /// <see cref="Entries"/>. On the wire it is that entry all the same (index <see cref="Context"/> + 1, term
    /// <see cref="LogTerm"/>; RaftMessageCodec), so the chunk needs no exact-length array: a sender hands over a slice of a
    /// pooled buffer, and the transport's reader a slice of its frame buffer, valid only while its receive callback runs.
    /// </summary>
    public ReadOnlyMemory<byte> Chunk { get; init; }
    /// <summary>Returns <see cref="Chunk"/>'s pooled buffer: the transport disposes of it once it has encoded the message
    /// (or dropped it from its queue). Null: nothing to return.</summary>
    public IDisposable? ChunkLease { get; init; }

    public override string ToString() =>
        $"{Type} g{Group} {From}->{To} t{Term} i{Index} lt{LogTerm} c{Commit} n{Entries.Count}{(Reject ? " reject hint " + RejectHint : "")}{(Context != 0 ? " ctx " + Context : "")}{(Voters.Count + Learners.Count > 0 ? $" voters [{string.Join(",", Voters)}] learners [{string.Join(",", Learners)}]" : "")}";
}
