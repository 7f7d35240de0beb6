namespace Replication.Engine.Cluster;

/// <summary>
/// The snapshots a leader delivered in full, per shard and receiving replica, each kept from log compaction
/// (NodeHost.CompactionPoint) until the leader hears that the replica's log reaches it, for a bounded time. Why: a
/// transfer ends with the receiver's acknowledgment, and the replica's answer to the snapshot, from which the leader sends
/// it the entries after the snapshot, comes a moment later. Compacted in between down to the catch-up margin (a leader
/// applies many entries during a transfer of seconds), those entries were gone and the replica was sent a whole second
/// snapshot (ring bench, margin 20: a restarted node got shard 0's 33 MB twice in a row, 2.5-3 s more before its
/// leaderships were balanced; with the default margin of 1,000, any shard taking over about 300 writes a second during a
/// 3-second transfer did the same). Loop thread only.
/// </summary>
internal sealed class DeliveredSnapshots
{
    private readonly Dictionary<(int Shard, int To), (long Index, TimeSpan Until)> _held = new();

    /// <summary>Holds <paramref name="index"/> of <paramref name="shard"/> for replica <paramref name="to"/> until
    /// <paramref name="until"/> at most (replacing an older hold for the same replica).</summary>
    public void Add(int shard, int to, long index, TimeSpan until) => _held[(shard, to)] = (index, until);

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
