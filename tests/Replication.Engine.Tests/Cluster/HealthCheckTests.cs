using Replication.Engine.Cluster;
using Xunit;

namespace Replication.Engine.Tests.Cluster;

/// <summary>Test-ReplicationCluster's checks (HealthChecks.cs) on a real cluster: a healthy one passes, a lost majority fails.</summary>
public class HealthCheckTests
{
    [Fact]
    public async Task Quorum_and_leader_fail_once_a_majority_is_down_and_the_stopped_nodes_fail_reachability()
    {
        await using var f = await ClusterFixture.StartAsync(nodes: 3, shards: 2);
        IReadOnlyList<ReplicationHealthCheck> checks = Array.Empty<ReplicationHealthCheck>();
        ClusterFixture.Eventually(() =>
        {
            checks = HealthChecks.RunAsync(f.Cluster, ClusterFixture.Bound, CancellationToken.None).GetAwaiter().GetResult();
            return checks.All(c => c.Result == HealthResult.Pass || c.Check == "LeaderBalance"); // spreading leaders is the balancer's business
        }, "every check but LeaderBalance passes on a healthy cluster");
        Assert.Equal(2, checks.Count(c => c.Check == "Quorum"));

        await f.Cluster.StopNodeAsync(2, kill: true, CancellationToken.None);
        await f.Cluster.StopNodeAsync(3, kill: true, CancellationToken.None);
        ClusterFixture.Eventually(() =>
        {
            checks = HealthChecks.RunAsync(f.Cluster, ClusterFixture.Bound, CancellationToken.None).GetAwaiter().GetResult();
            return checks.Where(c => c.Check is "Quorum" or "Leader").All(c => c.Result == HealthResult.Fail);
        }, "quorum and leader fail for every shard");
        Assert.Equal(new[] { "node 2", "node 3" }, checks.Where(c => c.Check == "NodeReachable" && c.Result == HealthResult.Fail).Select(c => c.Target));
        Assert.Contains("1 of 3 voters running", checks.First(c => c.Check == "Quorum").Detail);
    }
}
