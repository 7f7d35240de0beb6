using System.Collections.Concurrent;
using System.Management.Automation;
using System.Runtime.InteropServices;
using System.Security;
using Replication.Engine;
using Replication.Engine.Cluster;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Starts stopped nodes of an embedded cluster, or runs one node of a multi-process cluster in this
/// process. <c>-Id</c> (set Embedded): starts stopped nodes of an embedded cluster from their data
/// folders; each catches up from its shards' leaders in the background. <c>-Path -Listen</c> (set
/// Process): runs ONE node of a multi-process cluster in this process: it founds a new cluster (no
/// <c>-Join</c>, empty folder), joins one through any running node (<c>-Join</c>), or resumes the node its
/// folder holds. The cluster is registered in this session (Mode Process) so every cmdlet works against
/// it; with <c>-Wait</c> the cmdlet serves until Ctrl+C, SIGTERM or Stop-ReplicationNode, then stops
/// the node cleanly. Writes each node's status after the start. A node of set Process is returned once it
/// holds its place in the metadata group (a voter among the five lowest voting ids, else a learner), so a
/// runbook may stop another node right after; past 30 s it is returned with a warning. One node of a cluster
/// per session: a second one is refused (ClusterNameInUse) before it joins or founds anything.
/// </summary>
/// <example>
/// <code>Start-ReplicationNode -Id 2</code>
/// Restarts node 2 of the current embedded cluster from its data folder; it catches up from its shards' leaders.
/// </example>
/// <example>
/// <code>
/// $secret = Read-Host -AsSecureString 'Cluster secret'
/// Start-ReplicationNode -Path ./data/node1 -Listen 127.0.0.1:7101 -ClusterSecret $secret -Wait -Verbose
/// </code>
/// Founds a new multi-process cluster with this process as its first node and serves until Ctrl+C, writing node events to the verbose stream.
/// </example>
/// <example>
/// <code>Start-ReplicationNode -Path ./data/node2 -Listen 127.0.0.1:7102 -Join 127.0.0.1:7101 -ClusterSecret $secret -Wait</code>
/// Runs a second node in another process and joins it to the cluster through the first node.
/// </example>
/// <example>
/// <code>
/// $secret = Read-Host -AsSecureString 'Cluster secret'
/// Start-ReplicationNode -Path ./data/calm1 -Listen 127.0.0.1:7201 -ClusterSecret $secret -Name calm -ElectionTimeout 1000 -HeartbeatInterval 100
/// </code>
/// Founds a cluster whose first node waits 1 to 2 s without a leader before it campaigns, with 100 ms heartbeats, and returns once it runs
/// (without -Wait it serves as long as this session). Give each node of a cluster the same timing.
/// </example>
/// <example>
/// <code>
/// $secret = Read-Host -AsSecureString 'Cluster secret'
/// Start-ReplicationNode -Path ./data/async1 -Listen 127.0.0.1:7109 -Join 127.0.0.1:7101 -ClusterSecret $secret -Role Learner -Wait
/// </code>
/// Runs an asynchronous replica: it joins as a learner, follows every shard without counting toward any quorum and never leads;
/// Get-ReplicationNode shows its LagEntries and LagSeconds, and Get-ReplicationKey -Consistency Stale -MaxLag reads from it.
/// </example>
/// <seealso cref="ConnectReplicationClusterCommand"/>
/// <seealso cref="NewReplicationCertificateCommand"/>
[Cmdlet(VerbsLifecycle.Start, "ReplicationNode", DefaultParameterSetName = EmbeddedSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(ReplicationNode))]
public sealed class StartReplicationNodeCommand : ClusterCmdlet, IDynamicParameters
{
    /// <summary>Restart a node of an embedded cluster of this process.</summary>
    public const string EmbeddedSet = "Embedded";
    /// <summary>Run one node of a multi-process cluster in this process.</summary>
    public const string ProcessSet = "Process";

    /// <summary>Ids of the stopped nodes to start (set Embedded); binds the Id of piped node objects.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = EmbeddedSet)]
    [ArgumentCompleter(typeof(NodeIdCompleter))]
    public int[] Id { get; set; } = Array.Empty<int>();

    /// <summary>The node's data folder; a restart with the same folder resumes the same node.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ProcessSet)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>host:port to listen on for nodes and clients; other nodes dial exactly this. Loopback only unless -AllowRemote.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ProcessSet)]
    [ValidateNotNullOrEmpty]
    public string Listen { get; set; } = "";

    /// <summary>host:port of any running node of the cluster to join. Omit to found a new cluster (or to restart a node).</summary>
    [Parameter(ParameterSetName = ProcessSet)]
    [ValidateNotNullOrEmpty]
    public string? Join { get; set; }

    /// <summary>The shared cluster secret (every node and client must know it; it is never sent, logged or stored).
    /// Authenticates but does not encrypt: for nodes that talk over loopback. Give it or -CertificatePath.</summary>
    [Parameter(ParameterSetName = ProcessSet)]
    public SecureString? ClusterSecret { get; set; }

    /// <summary>A folder with the cluster CA (ca.crt) and this node's certificate (node.crt, node.key; New-ReplicationCertificate -Node):
    /// every connection is then TLS 1.3, mutual. Replacing the files there takes effect for new connections (rotation).</summary>
    [Parameter(ParameterSetName = ProcessSet)]
    [ValidateNotNullOrEmpty]
    public string? CertificatePath { get; set; }

    /// <summary>Voter (default) or Learner: a learner holds a non-voting copy of every shard (asynchronous replication), counts toward
    /// no quorum and never leads. A joining node registers with its role, so a learner is never a voter, not even briefly; given on
    /// a restart, a role other than the registered one is changed (as Add-ReplicationNode -Endpoint -Learner does). A founding node votes.</summary>
    [Parameter(ParameterSetName = ProcessSet)]
    public NodeRole Role { get; set; } = NodeRole.Voter;

    /// <summary>The node's failure domain (rack, availability zone): the ring puts a shard's voters in distinct zones first. Registered
    /// with the join; given on a restart, it replaces the registered zone.</summary>
    [Parameter(ParameterSetName = ProcessSet)]
    [ValidateNotNullOrEmpty]
    public string? Zone { get; set; }

    /// <summary>Allow a -Listen address other than loopback, so other machines can reach this node.</summary>
    [Parameter(ParameterSetName = ProcessSet)]
    public SwitchParameter AllowRemote { get; set; }

    /// <summary>-SplitKeys, -SplitWriteRate, -MaxConcurrentMoves and -TokensPerNode (declared there, offered in this cmdlet's set).</summary>
    private readonly RingSettingsParameters _ringSettings = new();

    public object GetDynamicParameters() => _ringSettings.Define(ProcessSet);

    /// <summary>Base Raft election timeout in milliseconds (30 to 60,000; default 400, chosen by measurement: README "Timing"): a follower that hears no leader for a
    /// random time in [t, 2t) starts an election. Longer rides through CPU stalls without spurious leader changes; shorter
    /// replaces a lost leader sooner. Counted in 10 ms ticks (rounded up); must exceed -HeartbeatInterval.</summary>
    [Parameter(ParameterSetName = ProcessSet)]
    [ValidateRange(RaftTiming.MinElectionTimeoutMilliseconds, RaftTiming.MaxElectionTimeoutMilliseconds)]
    public int ElectionTimeout { get; set; } = RaftTiming.DefaultElectionTimeoutMilliseconds;

    /// <summary>How often a leader sends heartbeats, in milliseconds (10 to 30,000; default 30). Must be shorter than
    /// -ElectionTimeout (refused otherwise: InvalidClusterOptions); a fifth of it or less leaves room for lost heartbeats.</summary>
    [Parameter(ParameterSetName = ProcessSet)]
    [ValidateRange(RaftTiming.MinHeartbeatIntervalMilliseconds, RaftTiming.MaxHeartbeatIntervalMilliseconds)]
    public int HeartbeatInterval { get; set; } = RaftTiming.DefaultHeartbeatIntervalMilliseconds;

    /// <summary>Serve until Ctrl+C, SIGTERM or Stop-ReplicationNode, then stop the node cleanly. Node events go to the verbose stream.</summary>
    [Parameter(ParameterSetName = ProcessSet)]
    public SwitchParameter Wait { get; set; }

    /// <summary>Name of a new cluster (founding only). Default: replication.</summary>
    [Parameter(ParameterSetName = ProcessSet)]
    [ValidatePattern("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    public string Name { get; set; } = "replication";

    /// <summary>Shards of a new cluster (founding only). Default 4.</summary>
    [Parameter(ParameterSetName = ProcessSet)]
    [ValidateRange(1, ClusterOptions.MaxShardCount)]
    public int ShardCount { get; set; } = ClusterOptions.DefaultShardCount;

    /// <summary>Discard this node's raft.db and state.db first (its files are damaged) and rebuild it from its peers: it asks
    /// them to take it out of its groups, then rejoins empty (node.json is kept).</summary>
    [Parameter(ParameterSetName = ProcessSet)]
    public SwitchParameter Rebuild { get; set; }

    /// <summary>How this node keeps its state machine in a new -Path: FilePerNode (one state.db, the default) or FilePerShard (a
    /// SQLite file per shard: a replica that moves is copied as its file; README, "The ring", stop 33). A -Path that holds a
    /// node keeps the layout it has (a -Rebuild too). Each node process chooses for itself: give every node of a cluster
    /// the same (mixed layouts work, but a copy between them goes row by row).</summary>
    [Parameter(ParameterSetName = ProcessSet)]
    public Replication.Engine.Storage.StoreLayout StoreLayout { get; set; } = Replication.Engine.Storage.StoreLayout.FilePerNode;

    /// <summary>Target replicas per shard of a new cluster (founding only), reached as nodes join. Default 3.</summary>
    [Parameter(ParameterSetName = ProcessSet)]
    [ValidateRange(1, ClusterOptions.MaxNodeCount)]
    public int ReplicationFactor { get; set; } = ClusterOptions.DefaultReplicationFactor;

    protected override void ProcessRecord()
    {
        if (ParameterSetName == ProcessSet)
        {
            RunClusterNode();
            return;
        }
        var cluster = ResolveCluster();
        foreach (var id in Id)
        {
            if (!ShouldProcess($"node {id} of cluster '{cluster.Name}'", "Start")) continue;
            try
            {
                var before = cluster.Engine.GetNode(id);
                WriteVerbose(before.State == NodeState.Running
                    ? $"Node {id} of cluster '{cluster.Name}' is running already; nothing to start."
                    : $"Starting node {id} of cluster '{cluster.Name}' from {before.DataPath} (was {before.State}{(before.StateReason is { } why ? ": " + why : "")}).");
                Await(cluster.Engine.StartNodeAsync(id, StopToken));
                var after = cluster.Engine.GetNode(id);
                WriteVerbose($"Node {id} is {after.State} at {after.Endpoint}; it catches up from its shards' leaders in the background.");
                WriteObject(after);
            }
            catch (ClusterNotRunningException e) { ThrowEngineError(e, cluster); }
            catch (ReplicationException e) { WriteEngineError(e, id); }
        }
    }

    private void RunClusterNode()
    {
        string path = GetUnresolvedProviderPathFromPSPath(Path);
        if (!ShouldProcess(path, Join is null
                ? $"Start a node on {Listen} (founding cluster '{Name}' when the folder holds no node yet)"
                : $"Start a node on {Listen} (joining through {Join} when the folder holds no node yet)"))
            return;
        var security = SecurityOptions.Resolve(this, ClusterSecret, CertificatePath, Engine.Security.CertificateRole.Node);
        if (AllowRemote && !security.IsTls)
            WriteWarning("This node accepts connections from other machines (-AllowRemote) with the shared secret only: traffic is authenticated but NOT encrypted, " +
                "so anyone on the network path can read keys and values. Use -CertificatePath (New-ReplicationCertificate) for TLS.");
        var events = new ConcurrentQueue<string>();
        // Set at each event queued: -Wait writes it out at once instead of polling the queue (not disposed: without -Wait
        // the node outlives this call and still logs).
        var logged = new AutoResetEvent(false);
        string? claimed = null; // the name this session reserved for the node's cluster (NodeOptions.ClaimName), before anything is registered
        var options = new NodeOptions
        {
            Path = path,
            Listen = Listen,
            Join = Join,
            Role = Role,
            Zone = Zone,
            Security = security,
            AllowRemote = AllowRemote,
            Name = Name,
            ShardCount = ShardCount,
            ReplicationFactor = ReplicationFactor,
            DiscardStores = Rebuild,
            StoreLayout = StoreLayout,
            Settings = _ringSettings.Given() ?? ClusterSettings.Default,
            ElectionTicks = RaftTiming.ToTicks(ElectionTimeout),
            HeartbeatTicks = RaftTiming.ToTicks(HeartbeatInterval),
            Log = m =>
            {
                if (events.Count >= 10_000) return;
                events.Enqueue($"{DateTimeOffset.Now:HH:mm:ss.fff} {m}");
                logged.Set();
            },
            ClaimName = name =>
            {
                if (!ClusterRegistry.TryReserve(name)) throw new ClusterNameTakenException(name);
                claimed = name;
            },
        };
        LocalNodeCluster engine;
        try
        {
            WriteVerbose(Join is null ? $"Starting a node in {path} on {Listen}." : $"Starting a node in {path} on {Listen}, joining through {Join}.");
            engine = Await(LocalNodeCluster.StartAsync(options, StopToken));
        }
        catch (ClusterNameTakenException e)
        {
            ThrowTerminatingError(NewErrorRecord(ErrorIds.ClusterNameInUse, ErrorCategory.ResourceExists,
                $"A cluster named '{e.Name}' is already known in this session; run each node of a cluster in its own process (nothing was started or registered).", e.Name));
            return;
        }
        catch (ReplicationException e)
        {
            if (claimed is not null) ClusterRegistry.ReleaseReservation(claimed);
            ThrowEngineError(e, e.Target ?? path);
            return;
        }
        catch
        {
            if (claimed is not null) ClusterRegistry.ReleaseReservation(claimed);
            throw;
        }
        while (events.TryDequeue(out var line)) WriteVerbose(line);
        var node = engine.Node;
        var cluster = new ReplicationCluster(engine);
        if (claimed is not null && !string.Equals(claimed, cluster.Name, StringComparison.OrdinalIgnoreCase)) ClusterRegistry.ReleaseReservation(claimed);
        ClusterRegistry.Register(cluster);
        ApplyRole(engine, node.NodeId);
        WaitForMetadataPlace(node);
        WriteObject(engine.GetNode(node.NodeId));
        if (Wait) ServeUntilStopped(node, cluster, events, logged);
    }

    /// <summary>A restarted node whose registered role or zone differs from the given one is changed (a joining node registered
    /// with them already). A failure leaves the node running as it was registered: an error, not a stop.</summary>
    private void ApplyRole(LocalNodeCluster engine, int id)
    {
        bool roleGiven = MyInvocation.BoundParameters.ContainsKey(nameof(Role));
        if (!roleGiven && Zone is null) return;
        var registered = engine.GetNode(id);
        bool? learner = roleGiven && registered.Role != Role ? Role == NodeRole.Learner : null;
        string? zone = Zone is not null && registered.Zone != Zone ? Zone : null;
        if (learner is null && zone is null) return;
        WriteVerbose($"Node {id} is registered as {registered.Role}{(registered.Zone is { } z ? " in zone " + z : "")}; changing it to {Role}{(Zone is null ? "" : " in zone " + Zone)}.");
        try { Await(engine.SetNodeRoleAsync(id, zone, learner, RoleChangeTimeout, StopToken)); }
        catch (ReplicationException e) { WriteEngineError(e, id); }
    }

    private static readonly TimeSpan RoleChangeTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Returns once the node holds its place in the metadata group (ClusterNode.WaitForMetadataPlaceAsync): a node that
    /// just joined is promoted there within a second or two, and a runbook that stops another node right after the start
    /// must not find the metadata group one voter short. Past the bound the node runs on with a warning.
    /// </summary>
    private void WaitForMetadataPlace(ClusterNode node)
    {
        string? lacking = Await(node.WaitForMetadataPlaceAsync(MetadataPlaceTimeout, StopToken));
        if (lacking is not null)
            WriteWarning($"Node {node.NodeId} is running, but after {MetadataPlaceTimeout.TotalSeconds:0} s {lacking}; the metadata leader keeps adding it. " +
                "Check Get-ReplicationEvent -Type MembershipChanged before stopping another node.");
    }

    private static readonly TimeSpan MetadataPlaceTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The cluster's name is taken in this session: thrown by the ClaimName hook, before the node registers anything.</summary>
    private sealed class ClusterNameTakenException(string name) : Exception($"A cluster named '{name}' is already known in this session.")
    {
        public string Name { get; } = name;
    }

    /// <summary>
    /// Blocks the pipeline thread until Ctrl+C (StopProcessing), SIGTERM, or the node stops; then stops it cleanly. Wakes
    /// only for those and for an event to write (<paramref name="logged"/>): a poll every 250 ms was a tenth of an idle
    /// node's CPU (bench finding, issue 11).
    /// </summary>
    private void ServeUntilStopped(ClusterNode node, ReplicationCluster cluster, ConcurrentQueue<string> events, AutoResetEvent logged)
    {
        using var terminate = new CancellationTokenSource();
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true; // we stop cleanly ourselves; the process then exits as the command ends
            terminate.Cancel();
        });
        try
        {
            var wake = new[] { ((IAsyncResult)node.Stopped).AsyncWaitHandle, StopToken.WaitHandle, terminate.Token.WaitHandle, logged };
            while (!node.Stopped.IsCompleted && !StopToken.IsCancellationRequested && !terminate.IsCancellationRequested)
            {
                WaitHandle.WaitAny(wake);
                while (events.TryDequeue(out var line)) WriteVerbose(line);
            }
        }
        finally
        {
            // Also on Ctrl+C (PipelineStoppedException comes after this block): the node must not outlive the command.
            node.StopAsync(kill: false).GetAwaiter().GetResult();
            ClusterRegistry.Unregister(cluster);
        }
        while (events.TryDequeue(out var line)) WriteVerbose(line);
        if (StopToken.IsCancellationRequested) throw new PipelineStoppedException();
    }
}
