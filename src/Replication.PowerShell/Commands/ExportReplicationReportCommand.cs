using System.Collections.ObjectModel;
using System.Management.Automation;
using System.Text;
using Replication.Engine;
using Replication.PowerShell.Report;

namespace Replication.PowerShell.Commands;

/// <summary>
/// Writes one self-contained HTML page about a cluster: its nodes (state, leaderships, lag), the placement of every
/// shard (leader, voters, learners, hash range), leaders per node and replica lag as charts, the ring drawn as SVG
/// with each node's arcs, recent events, and the latest benchmark results as a chart. The page needs no network and
/// no other file: mail it, or open it from a share. The ring comes from Get-ReplicationRing and the events from
/// Get-ReplicationEvent when this module has those cmdlets, and the benchmarks from the JSON files of ./build.ps1
/// Bench; a section whose data is not there says so instead. Overwrites -Path unless -NoClobber, as Export-Csv
/// does. Writes the file's FileInfo.
/// </summary>
/// <example>
/// <code>Export-ReplicationReport -Path ./report.html</code>
/// Writes the report of the current cluster to report.html in the current folder.
/// </example>
/// <example>
/// <code>Get-ReplicationCluster | ForEach-Object { Export-ReplicationReport -Cluster $_ -Path "./$($_.Name).html" }</code>
/// Writes one report per cluster of the session, each named after its cluster.
/// </example>
/// <seealso cref="GetReplicationNodeCommand"/>
/// <seealso cref="GetReplicationShardCommand"/>
[Cmdlet(VerbsData.Export, "ReplicationReport", DefaultParameterSetName = DefaultSet, SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(FileInfo))]
public sealed class ExportReplicationReportCommand : ClusterCmdlet
{
    public const string DefaultSet = "Default";

    /// <summary>The HTML file to write. Relative to the current location; overwritten unless -NoClobber.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = DefaultSet)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = string.Empty;

    /// <summary>The folder of benchmark results (*.json) to chart. Default: out/bench under the current location, where ./build.ps1 Bench writes them.</summary>
    [Parameter(ParameterSetName = DefaultSet)]
    [ValidateNotNullOrEmpty]
    public string? BenchmarkPath { get; set; }

    /// <summary>How many of the most recent events to show (when Get-ReplicationEvent is available). Default 50.</summary>
    [Parameter(ParameterSetName = DefaultSet)]
    [ValidateRange(0, 10_000)]
    public int EventCount { get; set; } = 50;

    /// <summary>Do not overwrite an existing file (a terminating ReportFileExists error instead).</summary>
    [Parameter(ParameterSetName = DefaultSet)]
    public SwitchParameter NoClobber { get; set; }

    protected override void ProcessRecord()
    {
        var cluster = ResolveCluster();
        string path = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
        if (NoClobber && File.Exists(path))
            ThrowTerminatingError(NewErrorRecord(ErrorIds.ReportFileExists, ErrorCategory.ResourceExists,
                $"'{path}' exists and -NoClobber was given.", path));
        if (!ShouldProcess(path, $"Write the report of cluster '{cluster.Name}'")) return;

        ReportData data;
        try
        {
            data = Gather(cluster);
        }
        catch (ReplicationException e)
        {
            ThrowEngineError(e, cluster);
            return;
        }
        string? folder = System.IO.Path.GetDirectoryName(path);
        if (!string.IsNullOrEmpty(folder)) Directory.CreateDirectory(folder);
        File.WriteAllText(path, ReportPage.Render(data), new UTF8Encoding(false));
        WriteVerbose($"Wrote the report of '{cluster.Name}' ({data.Nodes.Count} nodes, {data.Shards.Count} shards) to {path}.");
        WriteObject(new FileInfo(path));
    }

    private ReportData Gather(ReplicationCluster cluster)
    {
        WriteProgress(new ProgressRecord(6, "Export-ReplicationReport", "nodes and shards") { PercentComplete = 10 });
        var nodes = cluster.Engine.GetNodes().OrderBy(n => n.Id).ToArray();
        var shards = cluster.Engine.GetShards().OrderBy(s => s.Id)
            .Select(s => new ShardRow(s, Duck.Unsigned(s, "HashStart", "RangeStart", "Start"), Duck.Unsigned(s, "HashEnd", "HashLast", "RangeLast", "RangeEnd", "Last", "End")))
            .ToArray();

        WriteProgress(new ProgressRecord(6, "Export-ReplicationReport", "ring") { PercentComplete = 40 });
        var (ring, ringNote) = ReadRing(cluster);
        WriteProgress(new ProgressRecord(6, "Export-ReplicationReport", "events") { PercentComplete = 60 });
        var (events, eventNote) = ReadEvents(cluster);
        WriteProgress(new ProgressRecord(6, "Export-ReplicationReport", "benchmarks") { PercentComplete = 80 });
        string benchFolder = BenchmarkPath is null
            ? System.IO.Path.Combine(SessionState.Path.CurrentFileSystemLocation.ProviderPath, "out", "bench")
            : SessionState.Path.GetUnresolvedProviderPathFromPSPath(BenchmarkPath);
        var (bench, benchNote) = BenchmarkResults.Read(benchFolder);
        WriteProgress(new ProgressRecord(6, "Export-ReplicationReport", "done") { RecordType = ProgressRecordType.Completed });

        return new ReportData
        {
            ClusterName = cluster.Name,
            ClusterId = cluster.Id,
            Mode = cluster.Mode.ToString(),
            ReplicationFactor = cluster.ReplicationFactor,
            Where = cluster.Path ?? string.Join(", ", cluster.Endpoints),
            Generated = DateTimeOffset.Now,
            ModuleVersion = typeof(ExportReplicationReportCommand).Assembly.GetName().Version?.ToString(3) ?? "?",
            Nodes = nodes,
            Shards = shards,
            Ring = ring,
            RingNote = ringNote,
            Events = events,
            EventNote = eventNote,
            Benchmarks = bench,
            BenchmarkNote = benchNote,
        };
    }

    /// <summary>Get-ReplicationRing's entries (Node, Zone, Tokens, Share, ShardsHeld, ShardsLed, Bytes), read by name.</summary>
    private (IReadOnlyList<RingRow>, string?) ReadRing(ReplicationCluster cluster)
    {
        var output = Run("Get-ReplicationRing", cluster, null, out var note);
        if (output is null) return (Array.Empty<RingRow>(), note ?? "Get-ReplicationRing is not in this version of the module yet: the ring placement is being integrated. The inner circle shows shard hash ranges when the engine exposes them.");
        var rows = output.Select(o =>
        {
            var tokens = Duck.Unsigneds(o, "Tokens");
            int count = tokens.Count > 0 ? tokens.Count : (int)(Duck.Integer(o, "Tokens", "TokenCount", "VirtualNodes") ?? 0);
            double? share = Duck.Number(o, "Share");
            if (share > 1) share /= 100; // a percentage
            return new RingRow(Duck.Text(o, "Node", "NodeId", "Id") ?? "?", Duck.Text(o, "Zone"), tokens, count, share,
                Duck.Integer(o, "ShardsHeld"), Duck.Integer(o, "ShardsLed"), Duck.Integer(o, "Bytes", "SizeBytes"));
        }).ToList();
        return (rows, rows.Count == 0 ? "Get-ReplicationRing returned no entries." : null);
    }

    /// <summary>The last <see cref="EventCount"/> of Get-ReplicationEvent (Time, Type, Node, Shard, Term, Message), newest first.</summary>
    private (IReadOnlyList<EventRow>, string?) ReadEvents(ReplicationCluster cluster)
    {
        if (EventCount == 0) return (Array.Empty<EventRow>(), "-EventCount 0: events not read.");
        var output = Run("Get-ReplicationEvent", cluster, ("Last", EventCount), out var note);
        if (output is null) return (Array.Empty<EventRow>(), note ?? "Get-ReplicationEvent is not in this version of the module yet: recent elections, failovers and moves will show here.");
        var rows = output.Select(o => new EventRow(
                Duck.Get(o, "Time") switch { DateTimeOffset t => t, DateTime t => new DateTimeOffset(t), _ => null },
                Duck.Text(o, "Type") ?? "?", Duck.Text(o, "Node"), Duck.Text(o, "Shard"), Duck.Text(o, "Term"), Duck.Text(o, "Message") ?? ""))
            .OrderByDescending(e => e.Time ?? DateTimeOffset.MinValue)
            .Take(EventCount)
            .ToList();
        return (rows, null);
    }

    /// <summary>Runs another cmdlet of the session against the cluster, if it exists; null (and why, when it failed) otherwise.</summary>
    private Collection<PSObject>? Run(string command, ReplicationCluster cluster, (string Name, object Value)? extra, out string? note)
    {
        note = null;
        var info = SessionState.InvokeCommand.GetCommand(command, CommandTypes.Cmdlet | CommandTypes.Function | CommandTypes.Alias);
        if (info is null) return null;
        try
        {
            var script = ScriptBlock.Create("param($command, $cluster, $name, $value) " +
                "$arguments = @{}; if ($command.Parameters.ContainsKey('Cluster')) { $arguments.Cluster = $cluster }; " +
                "if ($name -and $command.Parameters.ContainsKey($name)) { $arguments[$name] = $value }; & $command @arguments");
            return SessionState.InvokeCommand.InvokeScript(SessionState, script, info, cluster, extra?.Name, extra?.Value);
        }
        catch (RuntimeException e)
        {
            note = $"{command} failed: {e.Message}";
            return null;
        }
    }
}
