using Replication.Engine.Storage;
using Xunit;

namespace Replication.Engine.Tests.Storage;

public class EventStoreTests
{
    private static ReplicationEvent Event(ReplicationEventType type, int? shard, string message, DateTimeOffset time) =>
        new() { Time = time, Node = 2, Shard = shard, Term = 7, Type = type, Message = message };

    [Fact]
    public void Events_survive_reopening_and_filter_by_time_type_shard_and_last()
    {
        using var folder = new TempFolder();
        var t0 = new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero);
        using (var store = EventStore.Open(folder.Path, out var damaged))
        {
            Assert.Null(damaged);
            store.Append(Event(ReplicationEventType.NodeStarted, null, "started", t0));
            store.Append(Event(ReplicationEventType.LeaderElected, 0, "won 0", t0.AddSeconds(1)));
            var last = store.Append(Event(ReplicationEventType.LeaderElected, 1, "won 1", t0.AddSeconds(2)));
            Assert.Equal(3, last.Sequence);
        }
        using (var store = EventStore.Open(folder.Path, out var damaged))
        {
            Assert.Null(damaged);
            var all = store.Read(null, Array.Empty<ReplicationEventType>(), Array.Empty<int>(), null);
            Assert.Equal(new[] { "started", "won 0", "won 1" }, all.Select(e => e.Message));
            Assert.Equal(t0.AddSeconds(1), all[1].Time);
            Assert.Equal((2, 0, 7L), (all[1].Node, all[1].Shard!.Value, all[1].Term));
            Assert.Null(all[0].Shard);
            Assert.Equal(new[] { "won 0", "won 1" }, store.Read(t0.AddSeconds(1), Array.Empty<ReplicationEventType>(), Array.Empty<int>(), null).Select(e => e.Message));
            Assert.Equal(new[] { "started" }, store.Read(null, new[] { ReplicationEventType.NodeStarted }, Array.Empty<int>(), null).Select(e => e.Message));
            Assert.Equal(new[] { "won 1" }, store.Read(null, Array.Empty<ReplicationEventType>(), new[] { 1 }, null).Select(e => e.Message));
            Assert.Equal(new[] { "won 0", "won 1" }, store.Read(null, Array.Empty<ReplicationEventType>(), Array.Empty<int>(), 2).Select(e => e.Message));
        }
    }

    [Fact]
    public void The_history_is_bounded_keeping_the_newest()
    {
        using var folder = new TempFolder();
        using var store = EventStore.Open(folder.Path, out _);
        var t0 = DateTimeOffset.UtcNow;
        int total = EventStore.MaxEvents + 600;
        for (int i = 0; i < total; i++) store.Append(Event(ReplicationEventType.NodeReachable, null, $"e{i}", t0.AddMilliseconds(i)));
        var kept = store.Read(null, Array.Empty<ReplicationEventType>(), Array.Empty<int>(), null);
        Assert.InRange(kept.Count, EventStore.MaxEvents, EventStore.MaxEvents + 256);
        Assert.Equal($"e{total - 1}", kept[^1].Message);
    }

    [Fact]
    public void A_damaged_history_is_set_aside_and_a_new_one_begins()
    {
        using var folder = new TempFolder();
        File.WriteAllBytes(folder.File(EventStore.FileName), Enumerable.Repeat((byte)0x5A, 8192).ToArray());
        using var store = EventStore.Open(folder.Path, out var damaged);
        Assert.NotNull(damaged);
        Assert.True(File.Exists(folder.File(EventStore.FileName + ".damaged")));
        store.Append(Event(ReplicationEventType.NodeStarted, null, "fresh", DateTimeOffset.UtcNow));
        Assert.Single(store.Read(null, Array.Empty<ReplicationEventType>(), Array.Empty<int>(), null));
    }
}
