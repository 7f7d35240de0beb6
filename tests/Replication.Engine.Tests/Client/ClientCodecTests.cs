using System.Buffers.Binary;
using Replication.Engine.Client;
using Replication.Engine.Cluster;
using Replication.Engine.Transport;
using Xunit;

namespace Replication.Engine.Tests.Client;

/// <summary>
/// Round trip of every client message type (encode, decode, encode again gives the same bytes, and
/// the fields survive), pinned header layout, and a bounded seeded fuzz of the request and response
/// decoders: every input decodes or raises ProtocolException, nothing else.
/// </summary>
public sealed class ClientCodecTests
{
    private static readonly DateTimeOffset T = DateTimeOffset.FromUnixTimeMilliseconds(1_760_000_000_123);

    public static IEnumerable<object[]> Requests() => SampleRequests().Select(r => new object[] { r.GetType().Name, r });

    internal static ClientRequest[] SampleRequests() =>
    [
        new WriteRequest(1, [new KeyWrite("a", "x"), new KeyWrite("b", null, 3), new KeyWrite("ключ", "ü€𝄞", 0), new KeyWrite("restored", "r", 0) { Version = 7 }], WriteConcern.All, TimeSpan.FromSeconds(7)),
        new GetRequest(2, "key/1", ReadConsistency.Lease, TimeSpan.FromMilliseconds(1500)),
        new ScanRequest(3, "user/", ReadConsistency.Stale, TimeSpan.FromSeconds(10), 500),
        new ScanNextRequest(4, 3),
        new ScanCloseRequest(5, 3),
        new StatusRequest(long.MaxValue),
        new WaitForLeadersRequest(7, null, TimeSpan.FromSeconds(2)),
        new WaitForLeadersRequest(8, 3, TimeSpan.FromSeconds(2)),
        new StopNodeRequest(9, 2, true),
        new StartNodeRequest(10, 2),
        new ForwardedRequest(11, new GetRequest(11, "forwarded", ReadConsistency.Linearizable, TimeSpan.FromSeconds(3))),
        new GetRequest(15, "bounded", ReadConsistency.Stale, TimeSpan.FromSeconds(2), 0),
        new JoinRequest(12, "127.0.0.1:7001", Guid.Parse("6f9619ff-8b86-d011-b42d-00c04fc964ff")),
        new JoinRequest(13, "127.0.0.1:7002", Guid.Parse("6f9619ff-8b86-d011-b42d-00c04fc964fe"), NodeRole.Learner, "rack-b"),
        new ShardScanRequest(13, 2, 0x4000_0000_0000_0000UL, ulong.MaxValue, "user/", "user/17", 500, ReadConsistency.Lease, TimeSpan.FromSeconds(4)),
        new AdminRequest(14, "file.write", 3, "{\"Offset\":0}", new byte[] { 1, 2, 3, 0, 255 }),
    ];

    internal static ClientResponse[] SampleResponses()
    {
        var node = new ReplicationNode
        {
            Cluster = "c", Id = 2, Endpoint = "127.0.0.1:5000", State = NodeState.Running, ShardsLed = 1, ShardsHosted = 3, Term = 4,
            CommitIndex = 100, AppliedIndex = 99, LagEntries = 1, LastContact = T, DataPath = "/tmp/n2", SizeBytes = 4096, StateReason = "elected", StateSince = T,
        };
        var stopped = new ReplicationNode { Cluster = "c", Id = 3, Endpoint = "", State = NodeState.Stopped, DataPath = "/tmp/n3" };
        var shard = new ReplicationShard { Cluster = "c", Id = 1, Leader = 2, Voters = [1, 2, 3], Learners = [4], Term = 4, CommitIndex = 50, KeyCount = 12 };
        var key = new ReplicationKey("k", "v", 3, 1, 77) { Cluster = "c" };
        return
        [
            new ErrorResponse(1, ClientRequestType.Get, new RemoteError("QuorumUnavailable", ReplicationErrorKind.Timeout, "no quorum")),
            new AckResponse(2, ClientRequestType.StopNode),
            new AckResponse(3, ClientRequestType.ScanClose),
            new WriteResponse(4, [new WriteOutcome(null, true, true, 2, 1, 9), new WriteOutcome(new RemoteError("VersionConflict", ReplicationErrorKind.Conflict, "v"), false, false, 0, 0, 0), new WriteOutcome(null, false, false, 0, 0, 0)]),
            new GetResponse(5, key),
            new GetResponse(6, null),
            new ScanPageResponse(7, ClientRequestType.Scan, 7, true, [key, key with { Key = "l" }]),
            new ScanPageResponse(8, ClientRequestType.ScanNext, 7, false, []),
            new StatusResponse(9, new ClusterStatus(Guid.NewGuid(), "c", 4, 3, ["127.0.0.1:5000"], [node, stopped], [shard])),
            new ShardsResponse(10, [shard, shard with { Id = 2, Learners = [] }]),
            new JoinResponse(11, 4, Guid.NewGuid(), "{\"cluster\":\"{}\"}"),
            new ScanPageResponse(12, ClientRequestType.ShardScan, 0, true, [key]),
            new AdminResponse(13, "{\"Done\":true}", new byte[] { 9, 8, 7 }),
            new ErrorResponse(14, ClientRequestType.Write, RemoteError.From(new VersionConflictException("k", 3, 5) { Target = "k" })),
            new GetResponse(15, key with { ReadFrom = 3, LagEntries = 0 }),
            new GetResponse(16, key with { ReadFrom = 2, LagEntries = 41 }),
        ];
    }

    [Fact]
    public void Request_types_are_pinned() =>
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], Enum.GetValues<ClientRequestType>().Select(t => (int)t));

    [Fact]
    public void Every_request_type_round_trips()
    {
        var samples = SampleRequests();
        Assert.Equal(Enum.GetValues<ClientRequestType>().Length, samples.Select(s => s.Type).Distinct().Count());
        foreach (var request in samples)
        {
            byte[] bytes = ClientCodec.EncodeRequest(request);
            Assert.Equal(request.CorrelationId, BinaryPrimitives.ReadInt64LittleEndian(bytes));
            Assert.Equal((byte)request.Type, bytes[8]);
            var decoded = ClientCodec.DecodeRequest(bytes);
            Assert.Equal(request.GetType(), decoded.GetType());
            Assert.Equal(bytes, ClientCodec.EncodeRequest(decoded));
            if (request is WriteRequest w)
                Assert.Equal(w.Writes, ((WriteRequest)decoded).Writes);
            else if (request is AdminRequest a)
            {
                var d = (AdminRequest)decoded;
                Assert.Equal((a.Operation, a.TargetNode, a.Json), (d.Operation, d.TargetNode, d.Json));
                Assert.Equal(a.Blob.ToArray(), d.Blob.ToArray());
            }
            else
                Assert.Equal(request, decoded);
        }
    }

    [Fact]
    public void Every_response_type_round_trips()
    {
        var samples = SampleResponses();
        // Every response shape (error, ack, write, get, scan page, status, shards, join, admin) is covered.
        Assert.Equal(9, samples.Select(s => s.GetType()).Distinct().Count());
        foreach (var response in samples)
        {
            byte[] bytes = ClientCodec.EncodeResponse(response);
            var decoded = ClientCodec.DecodeResponse(bytes, "c");
            Assert.Equal(response.GetType(), decoded.GetType());
            Assert.Equal(bytes, ClientCodec.EncodeResponse(decoded));
        }
        var status = ((StatusResponse)ClientCodec.DecodeResponse(ClientCodec.EncodeResponse(samples[8]))).Status;
        Assert.Equal(T, status.Nodes[0].LastContact);
        Assert.Null(status.Nodes[1].LastContact);
        Assert.Equal("elected", status.Nodes[0].StateReason);
        Assert.Equal([1, 2, 3], status.Shards[0].Voters);
        var error = (ErrorResponse)ClientCodec.DecodeResponse(ClientCodec.EncodeResponse(samples[0]));
        Assert.Equal(("QuorumUnavailable", ReplicationErrorKind.Timeout, "no quorum"), (error.Error.ErrorId, error.Error.Kind, error.Error.Message));
        var join = (JoinResponse)ClientCodec.DecodeResponse(ClientCodec.EncodeResponse(samples[10]));
        Assert.Equal(samples[10], join);
        var admin = (AdminResponse)ClientCodec.DecodeResponse(ClientCodec.EncodeResponse(samples[12]));
        Assert.Equal(new byte[] { 9, 8, 7 }, admin.Blob.ToArray());
        // A stale read's replica and lag cross the wire; other reads come back without them.
        Assert.Equal(samples[14], ClientCodec.DecodeResponse(ClientCodec.EncodeResponse(samples[14]), "c"));
        Assert.Equal(samples[15], ClientCodec.DecodeResponse(ClientCodec.EncodeResponse(samples[15]), "c"));
        var plain = ((GetResponse)ClientCodec.DecodeResponse(ClientCodec.EncodeResponse(samples[4]), "c")).Key!;
        Assert.Equal((null, null), (plain.ReadFrom, plain.LagEntries));
    }

    [Fact]
    public void Typed_engine_errors_survive_the_wire_with_their_fields()
    {
        var conflict = (ErrorResponse)ClientCodec.DecodeResponse(ClientCodec.EncodeResponse(SampleResponses()[13]));
        var e = Assert.IsType<VersionConflictException>(conflict.Error.ToException());
        Assert.Equal(5, e.ActualVersion);
        Assert.Equal("k", e.Target);
        Assert.Equal(new VersionConflictException("k", 3, 5).Message, e.Message);
        var atRisk = RemoteError.From(new QuorumAtRiskException(2, 7)).ToException();
        Assert.Equal((2, 7), (((QuorumAtRiskException)atRisk).NodeId, ((QuorumAtRiskException)atRisk).Shard));
        var stale = Assert.IsType<ReplicaTooStaleException>(RemoteError.From(new ReplicaTooStaleException(3, 1, 42, 10) { Target = "k" }).ToException());
        Assert.Equal((3, 1, (long?)42, 10L, "k"), (stale.Node, stale.Shard, stale.LagEntries, stale.MaxLag, stale.Target));
        var unknownLag = Assert.IsType<ReplicaTooStaleException>(RemoteError.From(new ReplicaTooStaleException(3, 1, null, 10) { Target = "k" }).ToException());
        Assert.Equal((3, 1, (long?)null, 10L), (unknownLag.Node, unknownLag.Shard, unknownLag.LagEntries, unknownLag.MaxLag));
        Assert.Equal(new ReplicaTooStaleException(3, 1, null, 10).Message, unknownLag.Message);
        var unknown = new RemoteError("SomethingNew", ReplicationErrorKind.Conflict, "later version").ToException();
        Assert.Equal(("SomethingNew", ReplicationErrorKind.Conflict), (((RemoteOperationException)unknown).ErrorId, unknown.Kind));
    }

    [Fact]
    public void A_forwarded_request_cannot_be_forwarded_again()
    {
        var inner = new StatusRequest(5);
        Assert.Throws<ArgumentException>(() => ClientCodec.EncodeRequest(new ForwardedRequest(5, new ForwardedRequest(5, inner))));
        byte[] bytes = ClientCodec.EncodeRequest(new ForwardedRequest(5, inner));
        Assert.Equal((byte)ClientRequestType.Forwarded, bytes[8]);
        Assert.Equal((byte)ClientRequestType.Status, bytes[9]);
        bytes[9] = (byte)ClientRequestType.Forwarded;
        Assert.Throws<ProtocolException>(() => ClientCodec.DecodeRequest(bytes));
    }

    [Fact]
    public void Not_leader_hints_survive_the_error_message()
    {
        var e = new NotLeaderException(3, 2, 5);
        Assert.Equal(5, NotLeaderException.HintOf(RemoteError.From(e).ToException().Message));
        Assert.Equal(0, NotLeaderException.HintOf("no hint here"));
    }

    [Theory]
    [InlineData(20260102)]
    [InlineData(11)]
    public void Random_and_mutated_client_payloads_decode_or_raise_ProtocolException(int seed)
    {
        const int cases = 5000;
        var random = new Random(seed);
        var requests = SampleRequests().Select(ClientCodec.EncodeRequest).ToArray();
        var responses = SampleResponses().Select(ClientCodec.EncodeResponse).ToArray();
        int decoded = 0, rejected = 0;
        for (int i = 0; i < cases; i++)
        {
            bool request = i % 2 == 0;
            var pool = request ? requests : responses;
            byte[] input = (i % 3) == 0 ? RandomBytes(random) : Mutate(random, pool[random.Next(pool.Length)]);
            try
            {
                if (request) ClientCodec.DecodeRequest(input); else ClientCodec.DecodeResponse(input);
                decoded++;
            }
            catch (ProtocolException) { rejected++; }
            catch (Exception e) { Assert.Fail($"seed {seed} case {i}: {e.GetType().Name} escaped for {Convert.ToHexString(input)}: {e}"); }
        }
        Assert.True(rejected > cases / 3, $"only {rejected} rejected");
        Assert.True(decoded > 0, "no mutated payload decoded");
    }

    internal static byte[] RandomBytes(Random random)
    {
        var bytes = new byte[random.Next(0, 200)];
        random.NextBytes(bytes);
        if (bytes.Length > 9 && random.Next(2) == 0) bytes[8] = (byte)random.Next(1, 10); // a known type, random body
        return bytes;
    }

    internal static byte[] Mutate(Random random, byte[] source)
    {
        var bytes = (byte[])source.Clone();
        for (int m = random.Next(1, 4); m > 0 && bytes.Length > 0; m--)
        {
            switch (random.Next(4))
            {
                case 0: bytes[random.Next(bytes.Length)] ^= (byte)(1 << random.Next(8)); break;
                case 1:
                    if (bytes.Length >= 4)
                        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(random.Next(bytes.Length - 3)), random.Next(2) == 0 ? uint.MaxValue - (uint)random.Next(4) : (uint)random.Next(8));
                    break;
                case 2: bytes = bytes[..random.Next(bytes.Length)]; break;
                default: bytes = [.. bytes, (byte)random.Next(256)]; break;
            }
        }
        return bytes;
    }
}
