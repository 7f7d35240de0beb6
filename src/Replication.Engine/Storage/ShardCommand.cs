using System.Buffers.Binary;

namespace Replication.Engine.Storage;

/// <summary>
/// A command about a shard itself rather than its keys, carried in a Normal Raft entry of that shard's log and
/// applied at the same index on every replica. Today one kind: <b>split</b> — the shard keeps the left part of its
/// hash range and a new shard, created with the same replicas, takes the right part; the rows of the right part move
/// to the new shard inside the same state-machine transaction, on every replica, so no data crosses the network.
/// The command carries both resulting ranges explicitly, so applying it never depends on what a replica believes the
/// range was. Distinguished from a <see cref="KvCommand"/> by its first byte (<see cref="Marker"/>, never a
/// KvCommand format version). Persisted in logs: only ever extended.
/// <code>
///   byte  0x80 (marker)   byte kind (1 = split)
///   i32   new shard id
///   u64   left start, u64 left last (inclusive), u64 right start, u64 right last (inclusive)   little-endian
/// </code>
/// </summary>
public sealed record ShardCommand(int NewShard, ulong LeftStart, ulong LeftLast, ulong RightStart, ulong RightLast)
{
    public const byte Marker = 0x80;
    private const byte SplitKind = 1;

    /// <summary>
    /// Index and term of the new shard's founding snapshot: its founding state is the rows the split moved to it, which no
    /// entry of its own log holds, so its Raft group starts from a snapshot at this index (NodeHost.CreateSplitGroups) and
    /// its applied index starts here (KvStore.ApplySplit). A replica that joins the new group without those rows (one that
    /// missed the split entry: it caught up on the old shard from a snapshot past it, then hosts the new shard empty) is
    /// then sent a snapshot, rows included, instead of the log from index 1; with the group founded at index 0 it stayed
    /// without the moved rows (found by the simulator). A group founded with a new cluster starts empty, at index 0.
    /// </summary>
    public const long SplitFoundingIndex = 1;
    private const int Length = 2 + 4 + 4 * 8;

    /// <summary>True when <paramref name="data"/> (a Normal entry's payload) is a shard command rather than a key-value command.</summary>
    public static bool IsShardCommand(ReadOnlySpan<byte> data) => data.Length > 0 && data[0] == Marker;

    public byte[] Encode()
    {
        var b = new byte[Length];
        b[0] = Marker;
        b[1] = SplitKind;
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(2), NewShard);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(6), LeftStart);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(14), LeftLast);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(22), RightStart);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(30), RightLast);
        return b;
    }

    /// <exception cref="StorageCorruptException">Not a well-formed shard command.</exception>
    public static ShardCommand Decode(ReadOnlySpan<byte> data)
    {
        if (data.Length != Length || data[0] != Marker || data[1] != SplitKind)
            throw new StorageCorruptException($"Malformed shard command ({data.Length} bytes).");
        var c = new ShardCommand(BinaryPrimitives.ReadInt32LittleEndian(data[2..]), BinaryPrimitives.ReadUInt64LittleEndian(data[6..]),
            BinaryPrimitives.ReadUInt64LittleEndian(data[14..]), BinaryPrimitives.ReadUInt64LittleEndian(data[22..]), BinaryPrimitives.ReadUInt64LittleEndian(data[30..]));
        if (c.NewShard < 0 || c.LeftStart > c.LeftLast || c.RightStart > c.RightLast || c.LeftLast == ulong.MaxValue || c.LeftLast + 1 != c.RightStart)
            throw new StorageCorruptException("Malformed shard command: the two ranges are not adjacent.");
        return c;
    }
}
