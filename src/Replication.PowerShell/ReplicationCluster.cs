using Replication.Engine.Cluster;

namespace Replication;

/// <summary>
/// A cluster as the PowerShell session sees it: the engine's <see cref="IReplicationCluster"/>
/// plus the state PowerShell shows. Live properties (<see cref="Nodes"/>, <see cref="Endpoints"/>,
/// <see cref="State"/>) ask the engine each time they are read, so a table shows current state.
/// Thread-safe: it holds no mutable state of its own.
/// </summary>
public sealed class ReplicationCluster
{
    internal ReplicationCluster(IReplicationCluster engine)
    {
        Engine = engine;
        Name = engine.Name;
        Id = engine.Id;
        Mode = engine.Mode;
        ShardCount = engine.ShardCount;
        ReplicationFactor = engine.ReplicationFactor;
        Path = engine.Path;
        Created = DateTimeOffset.Now;
    }

    /// <summary>The engine this object stands for. Cmdlets call it; nothing else does.</summary>
    internal IReplicationCluster Engine { get; }

    public string Name { get; }
    public Guid Id { get; }
    public ClusterMode Mode { get; }
    public int ShardCount { get; }
    public int ReplicationFactor { get; }
    /// <summary>Data folder of an embedded cluster; null for a remote one.</summary>
    public string? Path { get; }
    /// <summary>When this session created or connected the cluster.</summary>
    public DateTimeOffset Created { get; }

    /// <summary>"Running", or "Removed" once Remove-ReplicationCluster stopped it ("Disconnected" for a remote cluster after Disconnect-ReplicationCluster).</summary>
    public string State => Engine.IsRunning ? "Running" : Mode == ClusterMode.Remote ? "Disconnected" : "Removed";

    /// <summary>Status of every node now; empty once the cluster was removed.</summary>
    public ReplicationNode[] Nodes => TryRead(() => Engine.GetNodes().ToArray(), Array.Empty<ReplicationNode>());

    /// <summary>Endpoints of the nodes running now; empty once the cluster was removed.</summary>
    public string[] Endpoints => TryRead(() => Engine.Endpoints.ToArray(), Array.Empty<string>());

    public override string ToString() => Name;

    // Property getters must not throw (formatting swallows the error and shows nothing useful);
    // a cluster removed between the IsRunning check and the call shows as empty.
    private T TryRead<T>(Func<T> read, T whenRemoved)
    {
        if (!Engine.IsRunning) return whenRemoved;
        try { return read(); }
        catch (Engine.ReplicationException) { return whenRemoved; }
    }
}
