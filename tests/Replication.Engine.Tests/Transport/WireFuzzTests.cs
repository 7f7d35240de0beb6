using System.Buffers.Binary;
using Replication.Engine.Raft;
using Replication.Engine.Transport;
using Xunit;

namespace Replication.Engine.Tests.Transport;

/// <summary>
/// Bounded, seeded fuzzing of the receive path (frame reader plus payload decoders): every input
/// either decodes or raises <see cref="ProtocolException"/>. A failure names its seed and case
/// so it replays exactly.
/// </summary>
public sealed class WireFuzzTests
{
    private const int Cases = 4000;

    [Theory]
    [InlineData(20260101)]
    [InlineData(7)]
    public void Random_and_mutated_frames_decode_or_raise_ProtocolException(int seed)
    {
        var random = new Random(seed);
        var valid = ValidFrames();
        int decoded = 0, rejected = 0;
        for (int i = 0; i < Cases; i++)
        {
            byte[] input = (i % 4) switch
            {
                0 => RandomBytes(random),
                1 => WithRandomHeader(random),
                2 => Mutate(random, valid[random.Next(valid.Count)], fixChecksum: false),
                _ => Mutate(random, valid[random.Next(valid.Count)], fixChecksum: true), // reaches the payload decoders
            };
            try
            {
                decoded += DecodeAll(input);
            }
            catch (ProtocolException)
            {
                rejected++;
            }
            catch (Exception e)
            {
                Assert.Fail($"seed {seed} case {i}: {e.GetType().Name} escaped the decoder for input {Convert.ToHexString(input)}: {e}");
            }
        }
        Assert.True(rejected > Cases / 2, $"only {rejected} inputs rejected");
        Assert.True(decoded > 0, "no mutated frame decoded; the fuzz is not reaching the payload decoders");
    }

    /// <summary>Reads every frame in <paramref name="input"/> as a listener would and decodes its payload; returns the messages decoded.</summary>
    private static int DecodeAll(byte[] input)
    {
        using var reader = new FrameReader(new MemoryStream(input));
        int messages = 0;
        while (reader.ReadAsync().AsTask().GetAwaiter().GetResult() is { } frame)
        {
            if (frame.Type == FrameType.Hello) HelloFrame.Decode(frame.Payload.Span);
            else messages += RaftMessageCodec.DecodeBatch(frame.Payload.Span).Count;
        }
        return messages;
    }

    private static List<byte[]> ValidFrames()
    {
        var frames = new List<byte[]> { WireSamples.HelloFrameBytes(3, WireSamples.ClusterA) };
        foreach (var type in Enum.GetValues<MessageType>())
            frames.Add(WireSamples.RaftFrame(WireSamples.Full(type, entries: (int)type % 3), WireSamples.Full(MessageType.Heartbeat, group: 9, entries: 0)));
        return frames;
    }

    private static byte[] RandomBytes(Random random)
    {
        var bytes = new byte[random.Next(0, 300)];
        random.NextBytes(bytes);
        return bytes;
    }

    /// <summary>A plausible header (right version, known type, small length, matching CRC) over random payload bytes.</summary>
    private static byte[] WithRandomHeader(Random random)
    {
        var payload = RandomBytes(random);
        if (payload.Length >= 4 && random.Next(2) == 0) BinaryPrimitives.WriteUInt32LittleEndian(payload, (uint)random.Next(0, 4));
        return FrameCodec.Encode(random.Next(2) == 0 ? FrameType.Hello : FrameType.Raft, payload);
    }

    private static byte[] Mutate(Random random, byte[] frame, bool fixChecksum)
    {
        var bytes = (byte[])frame.Clone();
        int mutations = random.Next(1, 4);
        for (int m = 0; m < mutations; m++)
        {
            switch (random.Next(5))
            {
                case 0: // flip a bit
                    bytes[random.Next(bytes.Length)] ^= (byte)(1 << random.Next(8));
                    break;
                case 1: // set a byte to an edge value
                    bytes[random.Next(bytes.Length)] = (byte)(random.Next(3) switch { 0 => 0, 1 => 0xFF, _ => 0x7F });
                    break;
                case 2: // overwrite four bytes with a large or small u32 (counts and lengths)
                    if (bytes.Length >= 4)
                        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(random.Next(bytes.Length - 3)), random.Next(2) == 0 ? uint.MaxValue - (uint)random.Next(10) : (uint)random.Next(10));
                    break;
                case 3: // truncate
                    bytes = bytes[..random.Next(bytes.Length)];
                    break;
                default: // append junk
                    var junk = new byte[random.Next(1, 9)];
                    random.NextBytes(junk);
                    bytes = [.. bytes, .. junk];
                    break;
            }
            if (bytes.Length == 0) return bytes;
        }
        if (fixChecksum && bytes.Length >= FrameCodec.HeaderSize)
        {
            // Keep the header's length and the CRC honest so the mutation reaches the payload decoder.
            int payloadLength = bytes.Length - FrameCodec.HeaderSize;
            BinaryPrimitives.WriteUInt32LittleEndian(bytes, (uint)payloadLength);
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(6), Crc32C.Compute(bytes.AsSpan(FrameCodec.HeaderSize)));
        }
        return bytes;
    }
}
