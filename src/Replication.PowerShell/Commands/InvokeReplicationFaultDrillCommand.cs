using System.Collections.Concurrent;
using System.Diagnostics;
using System.Management.Automation;
using Replication.Engine;
using Replication.Engine.Cluster;
using Replication.Engine.Verification;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Runs a fault drill — the Jepsen test an operator runs on their own machine before trusting it. Concurrent clients
/// write, compare-and-set, delete and read (linearizably) while faults picked by a seed kill, pause, partition and slow
/// down the cluster's nodes one at a time. Every operation's call, return and outcome is recorded (a write that timed out
/// or lost its connection is of unknown outcome); after healing, every key is read back and the history is checked for
/// linearizability and for acknowledged writes that were lost. Writes ONE ReplicationDrillReport: operations, faults by
/// kind, the longest time a shard could not serve, acknowledged writes lost (must be 0), violations (must be 0), keys
/// the checker could not decide (an undecided history is not a pass), the seed and the command that replays its faults.
/// A report that did not pass also writes a warning.
/// <para>
/// Targets: by default a temporary embedded cluster (3 nodes, 4 shards) created in a temp folder and removed afterwards;
/// -Cluster an embedded cluster of this session (its nodes are really killed and paused; the drill's keys go under their
/// own prefix and are deleted at the end; asks for confirmation); -NodeProcess three node processes it starts itself
/// (pwsh running Start-ReplicationNode -Wait), killed with SIGKILL and paused with SIGSTOP/SIGCONT (Linux and macOS),
/// partitioned at their own transports and slowed through a fault hook only those processes accept (a random token in
/// their environment). Bounded: the workload runs for -Duration, then healing, read-back and check have their own limits.
/// </para>
/// </summary>
/// <example>
/// <code>Invoke-ReplicationFaultDrill -Duration 15</code>
/// Drills a temporary 3-node embedded cluster for 15 seconds with every fault and four clients, and prints the report (-Duration 60 is the recommended run).
/// </example>
/// <example>
/// <code>Invoke-ReplicationFaultDrill -Duration 10 -NodeProcess -Clients 8</code>
/// Starts three node processes, drills them for 10 seconds with SIGKILL, SIGSTOP, partitions and slow disks under eight clients, then stops them.
/// </example>
/// <example>
/// <code>Invoke-ReplicationFaultDrill -Seed 1234 -Duration 10 -Fault Kill,Partition | Select-Object -ExpandProperty FaultLog</code>
/// Replays the fault schedule of seed 1234 (kills and partitions only) and lists every fault it injected.
/// </example>
/// <example>
/// <code>
/// New-ReplicationCluster -Name staging -NodeCount 3 | Out-Null
/// Invoke-ReplicationFaultDrill -Cluster staging -Duration 10 -Confirm:$false
/// </code>
/// Drills an embedded cluster of this session: its own nodes are killed, paused, cut off and slowed, then healed.
/// </example>
/// <seealso cref="TestReplicationConsistencyCommand"/>
/// <seealso cref="StopReplicationNodeCommand"/>
/// <seealso cref="StartReplicationNodeCommand"/>
[Cmdlet(VerbsLifecycle.Invoke, "ReplicationFaultDrill", DefaultParameterSetName = TemporarySet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(ReplicationDrillReport))]
public sealed class InvokeReplicationFaultDrillCommand : ReplicationCmdlet
{
    public const string TemporarySet = "Temporary";
    public const string ClusterSet = "Cluster";
    public const string ProcessSet = "NodeProcess";

    /// <summary>Seconds the workload runs, faults included: 5 to 3600 (a TimeSpan or hh:mm:ss works too, as for -Timeout). Default 60.</summary>
    [Parameter(Position = 0)]
    [TimeoutSeconds]
    public double Duration { get; set; } = 60;

    /// <summary>Faults to inject: Kill, Pause, Partition, SlowDisk. Default: all four.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public DrillFault[]? Fault { get; set; }

    /// <summary>Concurrent clients, each with its own connection (1 to 64). Default 4.</summary>
    [Parameter]
    [ValidateRange(1, FaultDrillOptions.MaxClients)]
    public int Clients { get; set; } = 4;

    /// <summary>Seed of the fault schedule and of the clients' choices; the report's Replay repeats it. Default: a random seed.</summary>
    [Parameter]
    public int? Seed { get; set; }

    /// <summary>An embedded cluster of this session (object or name) to drill instead of a temporary one. Its nodes are really killed and paused.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ClusterSet)]
    [ArgumentCompleter(typeof(ClusterNameCompleter))]
    public object? Cluster { get; set; }

    /// <summary>Drill three node processes started for the purpose (pwsh running Start-ReplicationNode -Wait, stopped and deleted afterwards) instead of an embedded cluster.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ProcessSet)]
    public SwitchParameter NodeProcess { get; set; }

    /// <summary>Folder for the temporary cluster's or the node processes' data (new or empty; removed afterwards). Default: a new folder under the temp folder.</summary>
    [Parameter(ParameterSetName = TemporarySet)]
    [Parameter(ParameterSetName = ProcessSet)]
    [ValidateNotNullOrEmpty]
    public string? Path { get; set; }

    protected override void EndProcessing()
    {
        // The engine checks the bounds (InvalidDrillOptions); a non-finite number cannot even become a TimeSpan.
        if (!double.IsFinite(Duration) || Duration < FaultDrillOptions.MinDuration.TotalSeconds || Duration > FaultDrillOptions.MaxDuration.TotalSeconds)
            ThrowEngineError(new InvalidDrillOptionsException(
                $"-Duration is in seconds, from {FaultDrillOptions.MinDuration.TotalSeconds:0} to {FaultDrillOptions.MaxDuration.TotalSeconds:0}; got {Duration.ToString(System.Globalization.CultureInfo.InvariantCulture)}."), Duration);
        var log = new ConcurrentQueue<string>();
        var options = new FaultDrillOptions
        {
            Duration = TimeSpan.FromSeconds(Duration),
            Faults = Fault is { Length: > 0 } ? Fault.Aggregate(DrillFault.None, (all, f) => all | f) : null,
            Clients = Clients,
            Seed = Seed,
            Log = line => { if (line.StartsWith("drill:", StringComparison.Ordinal)) log.Enqueue(line); },
        };
        string? path = Path is null ? null : SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
        Task<ReplicationDrillReport> task;
        var pump = new ProgressPump(activityId: 7);
        object? target = path;
        try
        {
            if (ParameterSetName == ClusterSet)
            {
                var cluster = ResolveCluster(Cluster);
                target = cluster;
                if (cluster.Engine is not EmbeddedCluster embedded)
                    throw new InvalidDrillOptionsException($"Cluster '{cluster.Name}' is {cluster.Mode}: its nodes do not run in this session. Drill an embedded cluster, or use -NodeProcess.");
                if (!ShouldProcess($"cluster '{cluster.Name}'", $"Kill, pause, partition and slow its nodes for {Duration:0} s under a test workload")) return;
                task = FaultDrill.RunAsync(embedded, options, pump, StopToken);
            }
            else if (WhatIfRequested)
            {
                // A temporary cluster or node processes of its own: nothing of the user's is at risk, so no prompt
                // (ConfirmImpact High is for -Cluster); -WhatIf still only says what would run.
                ShouldProcess(NodeProcess ? "three new node processes" : "a temporary embedded cluster", $"Run a {Duration:0} s fault drill");
                return;
            }
            else if (NodeProcess)
            {
                task = FaultDrill.RunOnNodeProcessesAsync(options, NodeProcessLauncher(), path, pump, StopToken);
            }
            else
            {
                task = FaultDrill.RunOnNewClusterAsync(options, path, pump, StopToken);
            }
            pump.WaitPumping(task, this);
            foreach (string line in log) WriteVerbose(line);
            var report = Await(task);
            if (!report.Passed)
                WriteWarning($"The drill did not pass: {report.Violations} violation(s), {report.AcknowledgedWritesLost} acknowledged write(s) lost, {report.Undecided} undecided key(s). {report.Detail}");
            WriteObject(report);
        }
        catch (ReplicationException e)
        {
            foreach (string line in log) WriteVerbose(line);
            ThrowEngineError(e, target);
        }
    }

    /// <summary>
    /// How a node process is started: this same PowerShell (pwsh, or dotnet running pwsh.dll as a .NET tool — then the
    /// dll comes first), importing this same module and running Start-ReplicationNode -Wait, the secret read from the
    /// environment the drill sets. The process started is the node itself, so its signals reach the node.
    /// </summary>
    private Func<NodeProcessStart, ProcessStartInfo> NodeProcessLauncher()
    {
        string host = Environment.ProcessPath ?? "pwsh";
        string? hostDll = string.Equals(System.IO.Path.GetFileNameWithoutExtension(host), "dotnet", StringComparison.OrdinalIgnoreCase)
            ? Environment.GetCommandLineArgs()[0]
            : null;
        string module = MyInvocation.MyCommand.Module?.Path ?? typeof(InvokeReplicationFaultDrillCommand).Assembly.Location;
        return start =>
        {
            var psi = new ProcessStartInfo(host);
            if (hostDll is not null) psi.ArgumentList.Add(hostDll);
            foreach (var a in new[] { "-NoProfile", "-NonInteractive", "-Command" }) psi.ArgumentList.Add(a);
            string join = start.Join is null ? "" : $" -Join {Quote(start.Join)}";
            psi.ArgumentList.Add(
                $"Import-Module {Quote(module)}; " +
                $"$secret = ConvertTo-SecureString $env:{NodeProcessStart.SecretVariable} -AsPlainText -Force; " +
                $"Start-ReplicationNode -Path {Quote(start.Path)} -Listen {Quote(start.Listen)}{join} -ClusterSecret $secret -Wait -Verbose");
            // The secret (NodeProcessStart.SecretVariable) and the fault token come in the environment the drill sets.
            psi.Environment["NO_COLOR"] = "1";
            psi.Environment["POWERSHELL_TELEMETRY_OPTOUT"] = "1";
            return psi;
        };
    }

    private bool WhatIfRequested => MyInvocation.BoundParameters.TryGetValue("WhatIf", out var w)
        ? w is SwitchParameter { IsPresent: true }
        : LanguagePrimitives.IsTrue(SessionState.PSVariable.GetValue("WhatIfPreference"));

    private static string Quote(string s) => "'" + s.Replace("'", "''", StringComparison.Ordinal) + "'";
}
