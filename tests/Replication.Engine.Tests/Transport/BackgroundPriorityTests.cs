using System.Net;
using System.Threading.Channels;
using Replication.Engine.Raft;
using Replication.Engine.Transport;
using Xunit;

namespace Replication.Engine.Tests.Transport;

/// <summary>
/// Bulk snapshot work (reading a shard's rows) runs at a lower scheduling priority than the node loops (BackgroundPriority):
/// the thread that lowers itself, and only it; and on a real transport pair, the snapshot lane's reader is not lowered (its
/// work is a copy per chunk; starved at the lowest priority it made every move slower: TcpTransport's _bulk).
/// Linux only (elsewhere the priority is left as it is, and these assertions are about that platform's nice values).
/// </summary>
public sealed class BackgroundPriorityTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    [Theory]
    [InlineData(10)] // any value between normal and the lowest
    [InlineData(BackgroundPriority.Lowest)] // a snapshot's copy, the start-up code warm-up (CodeWarmUp)
    public void Only_the_thread_that_lowers_itself_runs_at_the_lower_priority(int nice)
    {
        if (!OperatingSystem.IsLinux()) return;
        int before = BackgroundPriority.CurrentThreadNice()!.Value;
        int? lowered = null, other = null;
        var worker = new Thread(() =>
        {
            BackgroundPriority.LowerCurrentThread(nice);
            lowered = BackgroundPriority.CurrentThreadNice();
        });
        worker.Start();
        worker.Join();
        var bystander = new Thread(() => other = BackgroundPriority.CurrentThreadNice());
        bystander.Start();
        bystander.Join();
        Assert.Equal(Math.Max(before, nice), lowered);
        Assert.Equal(before, BackgroundPriority.CurrentThreadNice()); // the caller of the test kept its own
        Assert.Equal(before, other); // and a thread started afterwards does not inherit the lowered one
    }

    [Fact]
    public async Task The_snapshot_lane_is_read_at_the_normal_priority_as_the_raft_lane()
    {
        if (!OperatingSystem.IsLinux()) return;
        int normal = BackgroundPriority.CurrentThreadNice()!.Value;
        var seen = Channel.CreateUnbounded<(MessageType Type, int? Nice)>();
        var a = new TcpTransport(1, WireSamples.ClusterA, WireSamples.SecretA.DeriveKey(WireSamples.ClusterA), new IPEndPoint(IPAddress.Loopback, 0), _ => { }, _ => { });
        var b = new TcpTransport(2, WireSamples.ClusterA, WireSamples.SecretA.DeriveKey(WireSamples.ClusterA), new IPEndPoint(IPAddress.Loopback, 0),
            m => seen.Writer.TryWrite((m.Type, BackgroundPriority.CurrentThreadNice())), _ => { });
        await using (a)
        await using (b)
        {
            await a.StartAsync(CancellationToken.None);
            await b.StartAsync(CancellationToken.None);
            a.SetPeer(2, b.LocalEndPoint);
            a.Send(new RaftMessage { Type = MessageType.Heartbeat, Group = 3, From = 1, To = 2, Term = 9 });
            a.Send(new RaftMessage
            {
                Type = MessageType.SnapshotChunk, Group = 3, From = 1, To = 2, Term = 9, Index = 5_000, LogTerm = 8, Context = 0,
                Chunk = WireSamples.Data(1_000, seed: 3),
            });
            var byType = new Dictionary<MessageType, int?>();
            while (byType.Count < 2)
            {
                var (type, nice) = await seen.Reader.ReadAsync().AsTask().WaitAsync(Deadline);
                byType[type] = nice;
            }
            Assert.Equal(normal, byType[MessageType.Heartbeat]);
            Assert.Equal(normal, byType[MessageType.SnapshotChunk]);
        }
    }
}
