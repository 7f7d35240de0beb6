using System.Buffers.Binary;
using Replication.Engine.Raft;

namespace Replication.Engine.Transport;

/// <summary>
/// Binary encoding of <see cref="RaftMessage"/> and of the message batch that forms a
/// <see cref="FrameType.Raft"/> payload (layout in docs/wire-protocol.md). All integers are
/// little-endian and fixed-width, so the encoded size is known before writing and a sender can
/// fill one exactly-sized pooled buffer.
/// <para>
/// Decoding trusts nothing: every count and length is checked against the bytes that remain
/// before anything is allocated, enum values must be known, flag bits must be defined, and a
/// payload must be consumed exactly. Any failure is a <see cref="ProtocolException"/> with
/// <see cref="ProtocolErrorReason.MalformedPayload"/>. Decoded entries own copies of their data,
/// so the receive buffer can be reused at once. Stateless and thread-safe.
/// </para>
/// </summary>
public static class RaftMessageCodec
{
    /// <summary>Encoded size of a message with no entries: type, group/from/to, term/logTerm/index/commit, flags, rejectHint/context, entry count.</summary>
    public const int MessageFixedSize = 1 + 3 * 4 + 4 * 8 + 1 + 2 * 8 + 4;

    /// <summary>Encoded size of an entry with no data: index, term, type, data length.</summary>
    public const int EntryFixedSize = 8 + 8 + 1 + 4;

    /// <summary>
    /// Encoded size of the membership trailer with no ids: voter count and learner count, appended
    /// after the entries (so the original 66-byte header and entry layout are unchanged). Every
    /// message carries it; only Snapshot messages and Appends from index 0 have ids in it.
    /// </summary>
    public const int MembershipFixedSize = 4 + 4;

    private const byte FlagReject = 1;

    /// <summary>Bytes <see cref="Encode"/> writes for <paramref name="message"/>.</summary>
    public static int GetEncodedSize(RaftMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        long size = MessageFixedSize;
        foreach (var e in message.Entries) size += EntryFixedSize + e.Data.Length;
        if (HasChunk(message)) size += EntryFixedSize + message.Chunk.Length;
        size += MembershipFixedSize + 4L * (message.Voters.Count + message.Learners.Count);
        // Larger than any frame can carry; the sender drops such a message rather than overflow.
        return size > int.MaxValue ? int.MaxValue : (int)size;
    }

    /// <summary>Bytes <see cref="EncodeBatch"/> writes for <paramref name="messages"/>.</summary>
    public static int GetBatchSize(IReadOnlyList<RaftMessage> messages)
    {
        long size = 4;
        foreach (var m in messages) size += GetEncodedSize(m);
        return size > int.MaxValue ? int.MaxValue : (int)size;
    }

    /// <summary>Writes <paramref name="message"/> at the start of <paramref name="destination"/>; returns the bytes written (== <see cref="GetEncodedSize"/>).</summary>
    public static int Encode(RaftMessage message, Span<byte> destination) => Encode(message, destination, withChunk: true, out _);

    /// <summary>
    /// <see cref="Encode(RaftMessage, Span{byte})"/> but for the bytes of <paramref name="message"/>'s chunk
    /// (<see cref="RaftMessage.Chunk"/>), which are left out: its entry's header says their length, and the encoding goes on
    /// where they would have ended, <paramref name="chunkAt"/> being where they belong (-1: the message has no such chunk).
    /// Returns the bytes written (<see cref="GetEncodedSize"/> less the chunk's length). For FrameWriter, which sends a large
    /// chunk from its own buffer rather than copy it into the frame's.
    /// </summary>
    internal static int EncodeWithoutChunk(RaftMessage message, Span<byte> destination, out int chunkAt) =>
        Encode(message, destination, withChunk: false, out chunkAt);

    /// <summary>A SnapshotChunk whose bytes are given as <see cref="RaftMessage.Chunk"/>: the bytes
    /// <see cref="EncodeWithoutChunk"/> leaves out, or 0.</summary>
    internal static int ChunkLength(RaftMessage message) => HasChunk(message) ? message.Chunk.Length : 0;

    private static int Encode(RaftMessage message, Span<byte> destination, bool withChunk, out int chunkAt)
    {
        ArgumentNullException.ThrowIfNull(message);
        int size = GetEncodedSize(message) - (withChunk ? 0 : ChunkLength(message));
        if (destination.Length < size)
            throw new ArgumentException($"Destination has {destination.Length} bytes, the message needs {size}.", nameof(destination));
        chunkAt = -1;
        var d = destination;
        d[0] = (byte)message.Type;
        BinaryPrimitives.WriteInt32LittleEndian(d[1..], message.Group);
        BinaryPrimitives.WriteInt32LittleEndian(d[5..], message.From);
        BinaryPrimitives.WriteInt32LittleEndian(d[9..], message.To);
        BinaryPrimitives.WriteInt64LittleEndian(d[13..], message.Term);
        BinaryPrimitives.WriteInt64LittleEndian(d[21..], message.LogTerm);
        BinaryPrimitives.WriteInt64LittleEndian(d[29..], message.Index);
        BinaryPrimitives.WriteInt64LittleEndian(d[37..], message.Commit);
        d[45] = message.Reject ? FlagReject : (byte)0;
        BinaryPrimitives.WriteInt64LittleEndian(d[46..], message.RejectHint);
        BinaryPrimitives.WriteInt64LittleEndian(d[54..], message.Context);
        bool chunk = HasChunk(message);
        BinaryPrimitives.WriteUInt32LittleEndian(d[62..], (uint)(message.Entries.Count + (chunk ? 1 : 0)));
        int pos = MessageFixedSize;
        foreach (var e in message.Entries) pos = WriteEntry(d, pos, e.Index, e.Term, e.Type, e.Data);
        if (chunk && withChunk) pos = WriteEntry(d, pos, message.Context + 1, message.LogTerm, EntryType.Normal, message.Chunk.Span);
        else if (chunk)
        {
            chunkAt = WriteEntryHeader(d, pos, message.Context + 1, message.LogTerm, EntryType.Normal, message.Chunk.Length);
            pos = chunkAt;
        }
        pos = WriteIds(message.Voters, d, pos);
        pos = WriteIds(message.Learners, d, pos);
        return pos;
    }

    /// <summary>A SnapshotChunk whose bytes are given as <see cref="RaftMessage.Chunk"/> (not as its entry): encoded as one entry.</summary>
    private static bool HasChunk(RaftMessage message) =>
        message.Type == MessageType.SnapshotChunk && message.Entries.Count == 0 && !message.Chunk.IsEmpty;

    private static int WriteEntry(Span<byte> d, int pos, long index, long term, EntryType type, ReadOnlySpan<byte> data)
    {
        pos = WriteEntryHeader(d, pos, index, term, type, data.Length);
        data.CopyTo(d[pos..]);
        return pos + data.Length;
    }

    /// <summary>An entry's fixed part (its data's length included); returns where its data goes.</summary>
    private static int WriteEntryHeader(Span<byte> d, int pos, long index, long term, EntryType type, int dataLength)
    {
        BinaryPrimitives.WriteInt64LittleEndian(d[pos..], index);
        BinaryPrimitives.WriteInt64LittleEndian(d[(pos + 8)..], term);
        d[pos + 16] = (byte)type;
        BinaryPrimitives.WriteUInt32LittleEndian(d[(pos + 17)..], (uint)dataLength);
        return pos + EntryFixedSize;
    }

    private static int WriteIds(IReadOnlyList<int> ids, Span<byte> d, int pos)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(d[pos..], (uint)ids.Count);
        pos += 4;
        foreach (int id in ids)
        {
            BinaryPrimitives.WriteInt32LittleEndian(d[pos..], id);
            pos += 4;
        }
        return pos;
    }

    private static int[] ReadIds(ref WireReader r, string what)
    {
        int count = r.ReadCount(4, what);
        if (count == 0) return Array.Empty<int>();
        var ids = new int[count];
        for (int i = 0; i < count; i++) ids[i] = r.ReadInt32();
        return ids;
    }

    /// <summary>Writes a batch payload (<c>[u32 count][message]*</c>); returns the bytes written (== <see cref="GetBatchSize"/>).</summary>
    public static int EncodeBatch(IReadOnlyList<RaftMessage> messages, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(messages);
        if (destination.Length < 4)
            throw new ArgumentException("Destination is too short for a batch.", nameof(destination));
        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)messages.Count);
        int pos = 4;
        foreach (var m in messages) pos += Encode(m, destination[pos..]);
        return pos;
    }

    /// <summary>A batch payload as a new array.</summary>
    public static byte[] EncodeBatch(IReadOnlyList<RaftMessage> messages)
    {
        var payload = new byte[GetBatchSize(messages)];
        EncodeBatch(messages, payload);
        return payload;
    }

    /// <summary>Decodes a payload holding exactly one message (no batch count).</summary>
    /// <exception cref="ProtocolException">The payload is malformed or has trailing bytes.</exception>
    public static RaftMessage Decode(ReadOnlySpan<byte> payload)
    {
        var reader = new WireReader(payload);
        var message = ReadMessage(ref reader, default);
        reader.EnsureEnd("message");
        return message;
    }

    /// <summary>
    /// Decodes a <see cref="FrameType.Raft"/> payload. A batch holds at least one message; an
    /// empty batch is malformed (no sender produces one).
    /// </summary>
    /// <exception cref="ProtocolException">The payload is malformed or has trailing bytes.</exception>
    public static IReadOnlyList<RaftMessage> DecodeBatch(ReadOnlySpan<byte> payload)
    {
        var reader = new WireReader(payload);
        int count = reader.ReadCount(MessageFixedSize, "Message");
        if (count == 0) throw WireReader.Malformed("Empty message batch.");
        var messages = new RaftMessage[count];
        for (int i = 0; i < count; i++) messages[i] = ReadMessage(ref reader, default);
        reader.EnsureEnd("message batch");
        return messages;
    }

    /// <summary>
    /// <see cref="DecodeBatch(ReadOnlySpan{byte})"/>, except that a SnapshotChunk's one entry is not copied: its bytes are
    /// <see cref="RaftMessage.Chunk"/>, a slice of <paramref name="payload"/>, valid only as long as the payload is (the
    /// transport's reader: until it reads the next frame, that is while its receive callback runs). A snapshot stream's
    /// receiver then copies each chunk once, where it stages it; decoded into an array of its own, every chunk was a new
    /// 256 KiB array on the large-object heap. Every other message is decoded as by the other overload.
    /// </summary>
    public static IReadOnlyList<RaftMessage> DecodeBatchBorrowingChunks(ReadOnlyMemory<byte> payload)
    {
        var reader = new WireReader(payload.Span);
        int count = reader.ReadCount(MessageFixedSize, "Message");
        if (count == 0) throw WireReader.Malformed("Empty message batch.");
        var messages = new RaftMessage[count];
        for (int i = 0; i < count; i++) messages[i] = ReadMessage(ref reader, payload);
        reader.EnsureEnd("message batch");
        return messages;
    }

    /// <param name="borrowFrom">Not empty: the payload <paramref name="r"/> reads, whose slice a SnapshotChunk's one entry
    /// becomes (<see cref="DecodeBatchBorrowingChunks"/>).</param>
    private static RaftMessage ReadMessage(ref WireReader r, ReadOnlyMemory<byte> borrowFrom)
    {
        byte type = r.ReadByte();
        if (type is < (byte)MessageType.Vote or > (byte)MessageType.Liveness)
            throw WireReader.Malformed($"Unknown message type {type}.");
        int group = r.ReadInt32();
        int from = r.ReadInt32();
        int to = r.ReadInt32();
        long term = r.ReadInt64();
        long logTerm = r.ReadInt64();
        long index = r.ReadInt64();
        long commit = r.ReadInt64();
        byte flags = r.ReadByte();
        if ((flags & ~FlagReject) != 0)
            throw WireReader.Malformed($"Undefined message flags 0x{flags:X2}.");
        long rejectHint = r.ReadInt64();
        long context = r.ReadInt64();
        int entryCount = r.ReadCount(EntryFixedSize, "Entry");
        LogEntry[] entries = entryCount == 0 ? Array.Empty<LogEntry>() : new LogEntry[entryCount];
        ReadOnlyMemory<byte> chunk = default;
        for (int i = 0; i < entryCount; i++)
        {
            long eIndex = r.ReadInt64();
            long eTerm = r.ReadInt64();
            byte eType = r.ReadByte();
            if (eType > (byte)EntryType.ConfChange)
                throw WireReader.Malformed($"Unknown entry type {eType}.");
            uint length = r.ReadUInt32();
            if (length > (uint)r.Remaining)
                throw WireReader.Malformed($"Entry data length {length} exceeds the {r.Remaining} bytes left.");
            if (!borrowFrom.IsEmpty && type == (byte)MessageType.SnapshotChunk && entryCount == 1 && length > 0
                && eType == (byte)EntryType.Normal && eIndex == context + 1 && eTerm == logTerm)
            {
                // Borrowed, not copied: as the sender's RaftMessage.Chunk, which encodes exactly this entry.
                chunk = borrowFrom.Slice(borrowFrom.Length - r.Remaining, (int)length);
                r.ReadBytes((int)length);
                entries = Array.Empty<LogEntry>();
                continue;
            }
            byte[] data = length == 0 ? Array.Empty<byte>() : r.ReadBytes((int)length).ToArray();
            entries[i] = new LogEntry(eIndex, eTerm, (EntryType)eType, data);
        }
        int[] voters = ReadIds(ref r, "Voter");
        int[] learners = ReadIds(ref r, "Learner");
        return new RaftMessage
        {
            Type = (MessageType)type,
            Group = group,
            From = from,
            To = to,
            Term = term,
            LogTerm = logTerm,
            Index = index,
            Commit = commit,
            Reject = (flags & FlagReject) != 0,
            RejectHint = rejectHint,
            Context = context,
            Entries = entries,
            Voters = voters,
            Learners = learners,
            Chunk = chunk,
        };
    }
}
