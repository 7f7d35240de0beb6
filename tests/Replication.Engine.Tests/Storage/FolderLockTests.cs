using Replication.Engine.Cluster;
using Replication.Engine.Storage;
using Replication.Engine.Tests.Cluster;
using Replication.Engine.Transport;
using Xunit;

namespace Replication.Engine.Tests.Storage;

/// <summary>A data folder has one owner: a second opener in this process is refused and changes nothing (the
/// cross-process case is in the Pester suite, with real processes).</summary>
public sealed class FolderLockTests
{
    [Fact]
    public void A_second_lock_on_a_folder_is_refused_until_the_first_is_released()
    {
        using var folder = new TempFolder();
        var first = FolderLock.Acquire(folder.Path, "x.lock");
        var refused = Assert.Throws<DataPathInUseException>(() => FolderLock.Acquire(folder.Path, "x.lock"));
        Assert.Equal("DataPathInUse", refused.ErrorId);
        Assert.Equal(folder.Path, refused.Path);
        if (OperatingSystem.IsLinux()) Assert.Equal(Environment.ProcessId, refused.HolderProcessId);
        first.Dispose();
        FolderLock.Acquire(folder.Path, "x.lock").Dispose();
    }

    [Fact]
    public async Task A_second_embedded_cluster_on_a_folder_in_use_is_refused_and_the_first_loses_nothing()
    {
        await using var f = await ClusterFixture.StartAsync();
        await f.PutAsync("before", "1");
        var files = Snapshot(f.Path);
        var refused = await Assert.ThrowsAsync<DataPathInUseException>(() => EmbeddedCluster.StartAsync(ClusterFixture.Options(f.Path, null, null), CancellationToken.None));
        Assert.Equal(f.Path, refused.Path);
        Assert.Equal(files, Snapshot(f.Path).Where(p => files.Contains(p)).ToArray()); // nothing created, nothing removed
        await f.PutAsync("after", "2");
        Assert.Equal("1", (await f.Cluster.GetAsync("before", ReadConsistency.Linearizable, ClusterFixture.Bound, CancellationToken.None))?.Value);
        Assert.All(await f.Cluster.CheckConsistencyAsync(null, ClusterFixture.Bound, CancellationToken.None), c => Assert.True(c.Consistent));
    }

    [Fact]
    public async Task A_node_folder_of_a_running_embedded_cluster_cannot_be_opened_as_a_process_node()
    {
        await using var f = await ClusterFixture.StartAsync();
        var node1 = Path.Combine(f.Path, "node-1");
        await Assert.ThrowsAsync<DataPathInUseException>(() => ClusterNode.StartAsync(new NodeOptions
        {
            Path = node1, Listen = $"127.0.0.1:{ClusterNodeTests.FreePort()}", Security = Replication.Engine.Security.TransportSecurity.SharedSecret(ClusterSecret.FromString("x")),
        }));
    }

    [Fact]
    public async Task Removing_a_cluster_releases_its_folder_for_the_next_opener()
    {
        var f = await ClusterFixture.StartAsync();
        await f.PutAsync("k", "v");
        await f.ReopenAsync(); // remove (keeping the data), then open again: the lock was released
        Assert.Equal("v", (await f.Cluster.GetAsync("k", ReadConsistency.Linearizable, ClusterFixture.Bound, CancellationToken.None))?.Value);
        await f.DisposeAsync();
    }

    private static string[] Snapshot(string root) =>
        Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Where(p => !p.EndsWith("-wal") && !p.EndsWith("-shm")).Order().ToArray();
}
