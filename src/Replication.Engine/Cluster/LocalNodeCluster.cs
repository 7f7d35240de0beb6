using Replication.Engine.Client;

namespace Replication.Engine.Cluster;

/// <summary>
/// The cluster as seen by a shell that runs one of its nodes (Start-ReplicationNode -Path, Mode Process): a
/// <see cref="ClusterClient"/> of that node, over loopback, which also owns the node — removing this cluster stops
/// the node (the other nodes keep running), and stopping or starting this node acts on it directly. Thread-safe.
/// </summary>
public sealed class LocalNodeCluster : ClusterClient
{
    private readonly ClusterNode _node;

    private LocalNodeCluster(ClusterNode node, Security.TransportSecurity security)
        : base(new[] { node.Endpoint }, security, new ClusterClientOptions())
    {
        _node = node;
    }

    /// <summary>The node this process runs.</summary>
    public ClusterNode Node => _node;
    public override ClusterMode Mode => ClusterMode.Process;
    /// <summary>The data folder of the node this process runs.</summary>
    public override string? Path => _node.Path;

    /// <summary>Starts a node (<see cref="ClusterNode.StartAsync"/>) and a client of it. On failure nothing keeps running.</summary>
    public static async Task<LocalNodeCluster> StartAsync(NodeOptions options, CancellationToken cancellationToken)
    {
        var node = await ClusterNode.StartAsync(options, cancellationToken).ConfigureAwait(false);
        var cluster = new LocalNodeCluster(node, options.Security);
        try
        {
            await cluster.InitializeAsync(null, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await cluster.CloseAsync().ConfigureAwait(false);
            await node.StopAsync(kill: false).ConfigureAwait(false);
            throw;
        }
        return cluster;
    }

    public override async Task<ReplicationNode> StopNodeAsync(int id, bool kill, CancellationToken cancellationToken)
    {
        if (id != _node.NodeId) return await base.StopNodeAsync(id, kill, cancellationToken).ConfigureAwait(false);
        var before = await NodeStatusAsync(id, cancellationToken).ConfigureAwait(false);
        await _node.StopAsync(kill).ConfigureAwait(false);
        return await StatusAfterStopAsync(before, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops the node this process runs (the cluster goes on); with <paramref name="deleteData"/> its folder is deleted.</summary>
    public override async Task RemoveAsync(bool deleteData)
    {
        await CloseAsync().ConfigureAwait(false);
        await _node.StopAsync(kill: false).ConfigureAwait(false);
        if (deleteData && Directory.Exists(_node.Path))
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(_node.Path, recursive: true);
        }
    }

    public override async ValueTask DisposeAsync() => await RemoveAsync(deleteData: false).ConfigureAwait(false);
}
