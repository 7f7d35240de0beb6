namespace Replication.Engine.Cluster;

/// <summary>
/// The snapshots a leader is sending or has just delivered, per shard and receiving replica, each keeping the log from
/// being compacted past its index (NodeHost.CompactionPoint): the receiver continues from that index, so the entries
/// right after it must still be there when it asks. A transfer's hold lasts while it runs (seconds for a large shard),
/// and after it succeeded until the leader hears that the replica's log reaches the index, for a bounded time: the
/// transfer ends with the receiver's acknowledgment, and its answer to the snapshot comes a moment later. (Bugs fixed:
/// compacted past it during the transfer, the receiver needed a second snapshot at once and stored it in one go, holding
/// its loop for the whole install, 1.2-1.8 s in the ring bench; compacted between the acknowledgment and the answer down
/// to the bench's catch-up margin of 20, a restarted node got shard 0's 33 MB twice in a row, and with the default
/// margin of 1,000 any shard taking over about 300 writes a second during a 3-second transfer did the same.)
/// Loop thread only.
/// </summary>
internal sealed class SnapshotHolds
{
    private readonly Dictionary<(int Shard, int To), (long Index, TimeSpan Until)> _held = new();

    /// <summary>Holds <paramref name="index"/> of <paramref name="shard"/> for replica <paramref name="to"/> until
    /// <paramref name="until"/> at most (<see cref="TimeSpan.MaxValue"/>: until dropped), replacing its earlier hold.</summary>
    public void Hold(int shard, int to, long index, TimeSpan until) => _held[(shard, to)] = (index, until);

    /// <summary>Ends the hold for replica <paramref name="to"/> of <paramref name="shard"/>, if any (a transfer that failed).</summary>
    public void Drop(int shard, int to) => _held.Remove((shard, to));

    /// <summary>
    /// Ends the holds that are no longer needed: expired at <paramref name="now"/>, or for which
    /// <paramref name="released"/>(shard, replica, index) is true (the replica's log reaches the index, or this node no
    /// longer leads the shard).
    /// </summary>
    public void Release(TimeSpan now, Func<int, int, long, bool> released)
    {
        if (_held.Count == 0) return;
        foreach (var (key, held) in _held.ToArray())
            if (now >= held.Until || released(key.Shard, key.To, held.Index)) _held.Remove(key);
    }

    /// <summary>The lowest index held for <paramref name="shard"/>; <see cref="long.MaxValue"/> when none.</summary>
    public long Floor(int shard)
    {
        long floor = long.MaxValue;
        foreach (var ((s, _), held) in _held)
            if (s == shard) floor = Math.Min(floor, held.Index);
        return floor;
    }
}
