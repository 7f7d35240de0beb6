using System.Net;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using Replication.Engine.Raft;
using Replication.Engine.Transport;
using Xunit;
using Xunit.Abstractions;

namespace Replication.Engine.Tests.Transport;

/// <summary>
/// A snapshot chunk given as RaftMessage.Chunk (a slice of a pooled buffer) rather than as an entry: the same bytes on the
/// wire; decoded by the lane as a slice of the frame, not a copy; and its buffer returned by the transport only once the
/// frame that carries it was encoded (a buffer returned earlier goes to the next chunk, whose bytes the frame would carry).
/// </summary>
public sealed class SnapshotChunkWireTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    private static RaftMessage ChunkMessage(long sequence, ReadOnlyMemory<byte> chunk, IDisposable? lease = null) => new()
    {
        Type = MessageType.SnapshotChunk, Group = 3, From = 1, To = 2, Term = 9, Index = 5_000, LogTerm = 8, Context = sequence,
        Chunk = chunk, ChunkLease = lease,
    };

    [Fact]
    public void A_chunk_given_as_a_slice_encodes_as_the_same_chunk_given_as_an_entry()
    {
        var data = WireSamples.Data(70_000, seed: 5);
        var backing = new byte[data.Length + 100];
        data.CopyTo(backing, 37);
        var asSlice = ChunkMessage(4, backing.AsMemory(37, data.Length));
        var asEntry = asSlice with { Chunk = default, Entries = [new LogEntry(5, 8, EntryType.Normal, data)] };
        Assert.Equal(RaftMessageCodec.GetEncodedSize(asEntry), RaftMessageCodec.GetEncodedSize(asSlice));
        Assert.Equal(RaftMessageCodec.EncodeBatch([asEntry]), RaftMessageCodec.EncodeBatch([asSlice]));
        // The copying decoder sees the entry, as before.
        WireSamples.AssertSame(asEntry, Assert.Single(RaftMessageCodec.DecodeBatch(RaftMessageCodec.EncodeBatch([asSlice]))));
    }

    [Fact]
    public void A_frame_whose_large_chunks_are_written_from_their_own_buffers_is_the_same_bytes_as_one_copied_whole()
    {
        // FrameWriter sends a chunk of 64 KiB or more from its own buffer (no copy into the frame's): the frame on the wire,
        // CRC included, must be exactly the one encoded in one piece, whatever mix of messages the batch holds.
        var big = WireSamples.Data(1 << 20, seed: 8);
        var backing = new byte[big.Length + 64];
        big.CopyTo(backing, 13);
        RaftMessage[][] batches =
        [
            [ChunkMessage(3, backing.AsMemory(13, big.Length))],
            [
                WireSamples.Full(MessageType.Append, entries: 2),
                ChunkMessage(4, WireSamples.Data(FrameWriter.GatherChunkBytes, seed: 9)),
                ChunkMessage(5, WireSamples.Data(1_000, seed: 10)), // below the threshold: copied as before
                ChunkMessage(6, backing.AsMemory(13, big.Length)) with { Commit = 1, RejectHint = 0xDEADBEEF, Voters = [1, 2, 3], Learners = [4] },
                WireSamples.Full(MessageType.Heartbeat, entries: 0),
            ],
        ];
        foreach (var batch in batches)
        {
            using var wire = new MemoryStream();
            new FrameWriter(wire).WriteRaft(batch);
            Assert.Equal(FrameCodec.Encode(FrameType.Raft, RaftMessageCodec.EncodeBatch(batch)), wire.ToArray());
            // And it reads back as the messages sent.
            using var reader = new FrameReader(new MemoryStream(wire.ToArray()));
            var (_, payload) = reader.Read() ?? throw new InvalidOperationException("no frame");
            Assert.Equal(batch.Length, RaftMessageCodec.DecodeBatchBorrowingChunks(payload).Count);
        }
    }

    [Fact]
    public void The_lane_decodes_a_chunk_as_a_slice_of_the_frame_and_every_other_message_as_before()
    {
        var data = WireSamples.Data(5_000, seed: 6);
        var append = WireSamples.Full(MessageType.Append, entries: 3);
        var offPattern = ChunkMessage(7, default) with { Entries = [new LogEntry(99, 8, EntryType.Normal, data)] }; // index is not Context + 1
        var payload = RaftMessageCodec.EncodeBatch([append, ChunkMessage(7, data), offPattern]);
        var decoded = RaftMessageCodec.DecodeBatchBorrowingChunks(payload);
        WireSamples.AssertSame(append, decoded[0]);
        Assert.Empty(decoded[1].Entries);
        Assert.Equal(data, decoded[1].Chunk.ToArray());
        Assert.True(MemoryMarshal.TryGetArray(decoded[1].Chunk, out var segment) && ReferenceEquals(segment.Array, payload), "borrowed, not copied");
        WireSamples.AssertSame(offPattern, decoded[2]);
        Assert.True(decoded[2].Chunk.IsEmpty);
        // Borrowed means valid only while the frame buffer is: the next frame read into it changes the chunk.
        payload.AsSpan().Fill(0xEE);
        Assert.NotEqual(data, decoded[1].Chunk.ToArray());
        // And a borrowed chunk encodes again as it came.
        var again = RaftMessageCodec.DecodeBatchBorrowingChunks(RaftMessageCodec.EncodeBatch([ChunkMessage(7, data)]))[0];
        Assert.Equal(RaftMessageCodec.EncodeBatch([ChunkMessage(7, data)]), RaftMessageCodec.EncodeBatch([again]));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Mutated_chunk_frames_decode_or_raise_ProtocolException_when_borrowed(int seed)
    {
        var random = new Random(seed);
        var valid = RaftMessageCodec.EncodeBatch([ChunkMessage(2, WireSamples.Data(300, seed)), WireSamples.Full(MessageType.Append, entries: 2)]);
        for (int i = 0; i < 2_000; i++)
        {
            var mutated = (byte[])valid.Clone();
            for (int flips = random.Next(1, 4); flips > 0; flips--) mutated[random.Next(mutated.Length)] = (byte)random.Next(256);
            var cut = mutated.AsMemory(0, random.Next(2) == 0 ? mutated.Length : random.Next(mutated.Length + 1));
            try
            {
                foreach (var m in RaftMessageCodec.DecodeBatchBorrowingChunks(cut))
                    Assert.True(m.Chunk.IsEmpty || (m.Type == MessageType.SnapshotChunk && m.Entries.Count == 0));
            }
            catch (ProtocolException e)
            {
                Assert.Equal(ProtocolErrorReason.MalformedPayload, e.Reason);
            }
        }
    }

    /// <summary>A chunk's lease that, when returned, scribbles over the buffer as the pool's next user would.</summary>
    private sealed class ScribblingLease(byte[] buffer) : IDisposable
    {
        public int Returned;
        public void Dispose()
        {
            Interlocked.Increment(ref Returned);
            buffer.AsSpan().Fill(0xAB);
        }
    }

    [Fact]
    public async Task The_transport_returns_a_chunk_buffer_only_after_its_frame_was_encoded()
    {
        Channel<(long Sequence, byte[] Bytes)> received = Channel.CreateUnbounded<(long, byte[])>();
        var a = new TcpTransport(1, WireSamples.ClusterA, WireSamples.SecretA.DeriveKey(WireSamples.ClusterA), new IPEndPoint(IPAddress.Loopback, 0),
            _ => { }, Log);
        // The receive callback copies the borrowed chunk while it runs, as NodeHost does.
        var b = new TcpTransport(2, WireSamples.ClusterA, WireSamples.SecretA.DeriveKey(WireSamples.ClusterA), new IPEndPoint(IPAddress.Loopback, 0),
            m => received.Writer.TryWrite((m.Context, m.Chunk.ToArray())), Log);
        await using (a)
        await using (b)
        {
            await a.StartAsync(CancellationToken.None);
            await b.StartAsync(CancellationToken.None);
            a.SetPeer(2, b.LocalEndPoint);
            const int count = 40;
            var leases = new List<ScribblingLease>();
            var expected = new List<byte[]>();
            for (int i = 0; i < count; i++)
            {
                var data = WireSamples.Data(64 * 1024 + i * 1000, seed: 100 + i);
                var pooled = new byte[data.Length + 4096]; // a pooled array is larger than its chunk
                data.CopyTo(pooled, 0);
                var lease = new ScribblingLease(pooled);
                leases.Add(lease);
                expected.Add(data);
                a.Send(ChunkMessage(i, pooled.AsMemory(0, data.Length), lease));
            }
            for (int i = 0; i < count; i++)
            {
                var (sequence, bytes) = await received.Reader.ReadAsync().AsTask().WaitAsync(Deadline);
                Assert.Equal(i, sequence);
                Assert.True(expected[i].AsSpan().SequenceEqual(bytes), $"chunk {i} arrived with other bytes: its buffer was returned before its frame was encoded");
            }
            Assert.True(SpinWait.SpinUntil(() => leases.All(l => Volatile.Read(ref l.Returned) == 1), Deadline), "every chunk's buffer returned once");
            Assert.All(leases, l => Assert.Equal(1, l.Returned));
        }
    }

    private void Log(string line)
    {
        try { output.WriteLine(line); }
        catch (InvalidOperationException) { /* after the test */ }
    }
}
