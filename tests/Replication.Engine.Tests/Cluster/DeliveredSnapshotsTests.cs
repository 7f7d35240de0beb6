using Replication.Engine.Cluster;
using Xunit;

namespace Replication.Engine.Tests.Cluster;

/// <summary>The holds on log compaction after a delivered snapshot (NodeHost.CompactionPoint, DeliveredSnapshots).</summary>
public sealed class DeliveredSnapshotsTests
{
    private static readonly TimeSpan Second = TimeSpan.FromSeconds(1);

    [Fact]
    public void A_delivered_snapshot_bounds_compaction_of_its_shard_until_released()
    {
        var held = new DeliveredSnapshots();
        Assert.Equal(long.MaxValue, held.Floor(0));
        held.Add(shard: 0, to: 3, index: 100, until: 10 * Second);
        held.Add(shard: 0, to: 2, index: 120, until: 10 * Second);
        held.Add(shard: 1, to: 3, index: 50, until: 10 * Second);
        Assert.Equal(100, held.Floor(0));
        Assert.Equal(50, held.Floor(1));
        Assert.Equal(long.MaxValue, held.Floor(2));

        // Nothing reached yet: every hold stays.
        held.Release(Second, (_, _, _) => false);
        Assert.Equal(100, held.Floor(0));

        // Replica 3's log reached shard 0's snapshot: replica 2's hold is what is left of shard 0.
        held.Release(Second, (shard, to, index) => shard == 0 && to == 3 && index == 100);
        Assert.Equal(120, held.Floor(0));
        Assert.Equal(50, held.Floor(1));

        // A newer delivery to the same replica replaces its hold.
        held.Add(shard: 1, to: 3, index: 70, until: 10 * Second);
        Assert.Equal(70, held.Floor(1));

        // Expired: released whether reached or not.
        held.Release(10 * Second, (_, _, _) => false);
        Assert.Equal(long.MaxValue, held.Floor(0));
        Assert.Equal(long.MaxValue, held.Floor(1));
    }
}
