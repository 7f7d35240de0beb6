using Replication.Engine.Cluster;
using Xunit;

namespace Replication.Engine.Tests.Cluster;

/// <summary>The holds on log compaction of snapshots being sent or just delivered (NodeHost.CompactionPoint, SnapshotHolds).</summary>
public sealed class SnapshotHoldsTests
{
    private static readonly TimeSpan Second = TimeSpan.FromSeconds(1);

    [Fact]
    public void A_delivered_snapshot_bounds_compaction_of_its_shard_until_released()
    {
        var held = new SnapshotHolds();
        Assert.Equal(long.MaxValue, held.Floor(0));
        held.Hold(shard: 0, to: 3, index: 100, until: 10 * Second);
        held.Hold(shard: 0, to: 2, index: 120, until: 10 * Second);
        held.Hold(shard: 1, to: 3, index: 50, until: 10 * Second);
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
        held.Hold(shard: 1, to: 3, index: 70, until: 10 * Second);
        Assert.Equal(70, held.Floor(1));

        // Expired: released whether reached or not.
        held.Release(10 * Second, (_, _, _) => false);
        Assert.Equal(long.MaxValue, held.Floor(0));
        Assert.Equal(long.MaxValue, held.Floor(1));
    }

    [Fact]
    public void A_transfer_under_way_is_held_until_it_ends_and_a_failed_one_is_dropped()
    {
        var held = new SnapshotHolds();
        held.Hold(shard: 0, to: 3, index: 100, until: TimeSpan.MaxValue);
        held.Release(TimeSpan.FromDays(1), (_, _, _) => false);
        Assert.Equal(100, held.Floor(0)); // no expiry while it runs

        held.Hold(shard: 0, to: 3, index: 100, until: 2 * Second); // delivered: held a while more
        held.Release(Second, (_, _, _) => false);
        Assert.Equal(100, held.Floor(0));

        held.Hold(shard: 0, to: 2, index: 90, until: TimeSpan.MaxValue);
        held.Drop(shard: 0, to: 2); // that transfer failed
        Assert.Equal(100, held.Floor(0));
        held.Drop(shard: 0, to: 2); // dropping what is not held changes nothing
        Assert.Equal(100, held.Floor(0));
    }
}
