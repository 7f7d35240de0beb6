using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Creates (or reopens) an embedded cluster whose nodes all run in this process. Each node has its
/// own data folder under -Path and its own loopback endpoint. Returns once the nodes listen; leaders are
/// elected shortly after (Wait-ReplicationLeader waits for them; writes wait up to their -Timeout).
/// When -Path already holds a cluster, its data, identity and shape are reused.
/// </summary>
/// <example>
/// <code>
/// New-ReplicationCluster -Name demo
/// Wait-ReplicationLeader
/// </code>
/// Creates the cluster demo with 3 nodes, 4 shards and replication factor 3 (data under &lt;temp&gt;/Replication/demo), then waits until every shard has a leader.
/// </example>
/// <example>
/// <code>New-ReplicationCluster -Name demo -Path (Join-Path ([IO.Path]::GetTempPath()) Replication/demo)</code>
/// Reopens the data a removed cluster left in the default folder (the system's temp folder, on every platform), with the same keys, identity and shape.
/// </example>
/// <example>
/// <code>
/// $secret = Read-Host -AsSecureString 'Cluster secret'
/// $c = New-ReplicationCluster -Name prod -NodeCount 5 -ShardCount 8 -ClusterSecret $secret
/// $c.Endpoints
/// </code>
/// Creates a 5-node, 8-shard cluster that remote shells can reach with Connect-ReplicationCluster and the same secret, and lists its nodes' endpoints.
/// </example>
/// <example>
/// <code>
/// New-ReplicationCluster -Name calm -ElectionTimeout 1000 -HeartbeatInterval 100
/// Wait-ReplicationLeader -Cluster calm
/// </code>
/// Creates a cluster whose followers wait 1 to 2 s without a leader before they elect a new one (leaders send heartbeats every 100 ms):
/// fewer spurious leader changes on a machine whose CPU is busy, at the cost of a slower failover when a leader is really lost.
/// </example>
[Cmdlet(VerbsCommon.New, "ReplicationCluster", DefaultParameterSetName = EmbeddedSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(ReplicationCluster))]
public sealed class NewReplicationClusterCommand : ReplicationCmdlet, IDynamicParameters
{
    public const string EmbeddedSet = "Embedded";

    /// <summary>Session-unique name; also names the default data folder.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = EmbeddedSet)]
    [ValidatePattern("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    public string Name { get; set; } = string.Empty;

    /// <summary>Nodes to run (default 3). Omit it to reopen a folder with whatever it holds.</summary>
    [Parameter(ParameterSetName = EmbeddedSet)]
    [ValidateRange(1, ClusterOptions.MaxNodeCount)]
    public int NodeCount { get; set; } = ClusterOptions.DefaultNodeCount;

    /// <summary>Fixed number of shards (default 4). Omit it to reopen a folder with whatever it holds.</summary>
    [Parameter(ParameterSetName = EmbeddedSet)]
    [ValidateRange(1, ClusterOptions.MaxShardCount)]
    public int ShardCount { get; set; } = ClusterOptions.DefaultShardCount;

    /// <summary>Replicas per shard (default 3, at most NodeCount). Omit it to reopen a folder with whatever it holds.</summary>
    [Parameter(ParameterSetName = EmbeddedSet)]
    [ValidateRange(1, ClusterOptions.MaxNodeCount)]
    public int ReplicationFactor { get; set; } = ClusterOptions.DefaultReplicationFactor;

    /// <summary>Data folder. Default: &lt;temp&gt;/Replication/&lt;Name&gt;. Relative paths are resolved
    /// against the current PowerShell location.</summary>
    [Parameter(ParameterSetName = EmbeddedSet)]
    [ValidateNotNullOrEmpty]
    public string? Path { get; set; }

    /// <summary>Shared secret that nodes and remote clients (Connect-ReplicationCluster) must prove they know.
    /// Without it, a random secret is generated for this start and kept in memory only: no client can connect.</summary>
    [Parameter(ParameterSetName = EmbeddedSet)]
    public System.Security.SecureString? ClusterSecret { get; set; }

    /// <summary>A folder with the cluster CA (ca.crt) and a node certificate (node.crt, node.key; New-ReplicationCertificate):
    /// the nodes then talk TLS 1.3 (mutual), and remote shells connect with a client certificate of the same CA.</summary>
    [Parameter(ParameterSetName = EmbeddedSet)]
    [ValidateNotNullOrEmpty]
    public string? CertificatePath { get; set; }

    /// <summary>-SplitKeys, -SplitWriteRate, -MaxConcurrentMoves and -TokensPerNode (declared there, offered in this cmdlet's set).</summary>
    private readonly RingSettingsParameters _ringSettings = new();

    public object GetDynamicParameters() => _ringSettings.Define(EmbeddedSet);

    /// <summary>Base Raft election timeout in milliseconds (30 to 60,000; default 400, chosen by measurement: README "Timing"): a follower that hears no leader for a
    /// random time in [t, 2t) starts an election. Longer rides through CPU stalls without spurious leader changes; shorter
    /// replaces a lost leader sooner. Counted in 10 ms ticks (rounded up); must exceed -HeartbeatInterval.</summary>
    [Parameter(ParameterSetName = EmbeddedSet)]
    [ValidateRange(RaftTiming.MinElectionTimeoutMilliseconds, RaftTiming.MaxElectionTimeoutMilliseconds)]
    public int ElectionTimeout { get; set; } = RaftTiming.DefaultElectionTimeoutMilliseconds;

    /// <summary>How often a leader sends heartbeats, in milliseconds (10 to 30,000; default 30). Must be shorter than
    /// -ElectionTimeout (refused otherwise: InvalidClusterOptions); a fifth of it or less leaves room for lost heartbeats.</summary>
    [Parameter(ParameterSetName = EmbeddedSet)]
    [ValidateRange(RaftTiming.MinHeartbeatIntervalMilliseconds, RaftTiming.MaxHeartbeatIntervalMilliseconds)]
    public int HeartbeatInterval { get; set; } = RaftTiming.DefaultHeartbeatIntervalMilliseconds;

    /// <summary>How each node keeps its state machine: FilePerNode (one state.db per node, the default) or FilePerShard (a
    /// SQLite file per shard, shards/shard-N.db: a replica that moves is copied as its file, 3-6 times faster on this
    /// project's ring bench, and a replica that moves away is a file deleted). Only for a new cluster: a reopened one keeps
    /// its layout (another one asked for is refused, ClusterPathMismatch), and nodes added later take it. README, "The
    /// ring", stop 33, has what is measured and what is not yet.</summary>
    [Parameter(ParameterSetName = EmbeddedSet)]
    public Replication.Engine.Storage.StoreLayout StoreLayout { get; set; } = Replication.Engine.Storage.StoreLayout.FilePerNode;

    protected override void EndProcessing()
    {
        var path = ClusterFolder(Name, Path);

        if (!ShouldProcess($"{Name} ({NodeCount} nodes, {ShardCount} shards, replication factor {ReplicationFactor}) in {path}", "Create and start embedded cluster"))
            return;

        var options = new ClusterOptions
        {
            Name = Name,
            Path = path,
            // Only what the user said: a reopened folder keeps its stored shape, and an explicit
            // conflicting value is an error (ClusterPathMismatch) rather than a silent change.
            NodeCount = Bound(nameof(NodeCount)) ? NodeCount : null,
            ShardCount = Bound(nameof(ShardCount)) ? ShardCount : null,
            ReplicationFactor = Bound(nameof(ReplicationFactor)) ? ReplicationFactor : null,
            ClusterSecret = ClusterSecret is null ? null : SecretConverter.ToClusterSecret(ClusterSecret),
            CertificatePath = CertificatePath is null ? null : SessionState.Path.GetUnresolvedProviderPathFromPSPath(CertificatePath),
            Settings = _ringSettings.Given(),
            ElectionTicks = RaftTiming.ToTicks(ElectionTimeout),
            HeartbeatTicks = RaftTiming.ToTicks(HeartbeatInterval),
            StoreLayout = Bound(nameof(StoreLayout)) ? StoreLayout : null,
        };
        WriteVerbose($"Starting the nodes of cluster '{Name}' in {path}.");
        var cluster = StartAndRegister(Name, () => Await(EmbeddedCluster.StartAsync(options, StopToken)), _ => Name);
        WriteObject(cluster);
    }

    private bool Bound(string parameter) => MyInvocation.BoundParameters.ContainsKey(parameter);
}
