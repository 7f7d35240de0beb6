using Replication.Engine.Client;
using Replication.Engine.Cluster;
using Replication.Engine.Security;
using Replication.Engine.Tests.Cluster;
using Xunit;

namespace Replication.Engine.Tests.Security;

/// <summary>A whole cluster over TLS: its nodes form it, replicate and serve through certificates only; a client with a
/// certificate of the same CA works, a client with only a secret is refused.</summary>
public sealed class TlsClusterTests
{
    [Fact]
    public async Task An_embedded_cluster_with_certificates_forms_and_serves_TLS_clients_only()
    {
        using var certificates = new TestCertificates();
        string nodes = certificates.Node("nodes");
        string path = Path.Combine(certificates.Root, "cluster");
        await using var cluster = await EmbeddedCluster.StartAsync(ClusterFixture.Options(path, 3, 2) with { CertificatePath = nodes }, CancellationToken.None);
        var written = await cluster.WriteAsync([new KeyWrite("secret-value", "only over TLS")], WriteConcern.All, ClusterFixture.Bound, CancellationToken.None);
        Assert.Null(written[0].Error);
        Assert.All(cluster.GetShards(), s => Assert.Equal(3, s.Voters.Count)); // the nodes joined each other over TLS

        await using (var client = await ClusterClient.ConnectAsync(cluster.Endpoints, certificates.ClientSecurity("operator")))
            Assert.Equal("only over TLS", (await client.GetAsync("secret-value", ReadConsistency.Linearizable, ClusterFixture.Bound, CancellationToken.None))?.Value);

        var refused = await Assert.ThrowsAnyAsync<ReplicationException>(() => ClusterClient.ConnectAsync(cluster.Endpoints, Replication.Engine.Transport.ClusterSecret.FromString("guess")));
        Assert.Contains(refused.ErrorId, new[] { "AuthenticationFailed", "EndpointUnreachable" });
    }
}
