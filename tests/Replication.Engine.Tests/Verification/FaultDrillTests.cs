using System.Diagnostics;
using Replication.Engine.Verification;
using Xunit;
using Xunit.Abstractions;

namespace Replication.Engine.Tests.Verification;

/// <summary>
/// The fault drill (Verification/FaultDrill.cs) in the suite: a short drill with every fault on a temporary embedded
/// cluster passes; the same drill against a deliberately broken engine (the local-reads mutant: linearizable reads
/// served by whatever replica the client reached) reports violations, which proves the drill can fail; and the fault
/// plan is a pure function of its seed. Real timing: the number of operations and faults varies from run to run.
/// </summary>
[Trait("Category", "Drill")]
public sealed class FaultDrillTests(ITestOutputHelper output)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    private void Log(string line)
    {
        if (!line.StartsWith("drill:", StringComparison.Ordinal)) return; // node events are too many for the test output
        try { output.WriteLine($"{_clock.Elapsed.TotalSeconds,7:0.000} {line}"); } catch (InvalidOperationException) { }
    }

    [Fact]
    public async Task A_short_drill_with_every_fault_on_a_temporary_embedded_cluster_passes()
    {
        // The first seed whose 15-second plan holds every kind of fault (the plan depends on the seed only).
        var duration = TimeSpan.FromSeconds(15);
        int seed = Enumerable.Range(1, 1000).First(s => FaultSchedule.Plan(s, duration, DrillFault.All, new[] { 1, 2, 3 }, 4).Select(p => p.Kind).Distinct().Count() == 4);
        var report = await FaultDrill.RunOnNewClusterAsync(new FaultDrillOptions
        {
            Duration = duration,
            Seed = seed,
            Clients = 4,
            Log = Log,
        }, path: null, progress: null, CancellationToken.None);
        Describe(report);
        Assert.True(report.Passed, report.Detail);
        Assert.Equal(0, report.Violations);
        Assert.Equal(0, report.AcknowledgedWritesLost);
        Assert.Equal(0, report.Undecided);
        // No timed assertions: the number of operations and the unavailability are the machine's (under load, elections
        // take seconds); that writes and reads were answered and checked, and that it was measured, is the test's.
        Assert.True(report.Succeeded > 0 && report.Writes > 0 && report.Reads > 0, $"{report.Succeeded} of {report.Operations} succeeded");
        Assert.True(report.FaultLog.Count >= 3, $"{report.FaultLog.Count} faults");
        Assert.True(report.LongestUnavailability > TimeSpan.Zero, "unavailability measured");
        Assert.Equal(4, report.Faults.Count); // Kill, Pause, Partition and SlowDisk all ran
        Assert.Contains($"-Seed {seed}", report.Replay);
    }

    [Fact]
    public async Task The_drill_reports_violations_against_an_engine_that_serves_linearizable_reads_from_any_replica()
    {
        var report = await FaultDrill.RunOnNewClusterAsync(new FaultDrillOptions
        {
            Duration = TimeSpan.FromSeconds(10),
            Seed = 11,
            Clients = 4,
            Faults = DrillFault.Partition | DrillFault.Pause, // a replica cut off or paused serves old values
            MutantLocalReads = true,
            Log = Log,
        }, path: null, progress: null, CancellationToken.None);
        Describe(report);
        Assert.False(report.Passed);
        Assert.True(report.Violations > 0, "the mutant must be caught");
        Assert.Contains("no linearization", report.Detail);
    }

    [Fact]
    [Trait("Category", "Process")]
    public async Task A_short_drill_with_every_fault_on_node_processes_passes()
    {
        // Node processes: SIGKILL, SIGSTOP/SIGCONT, and partitions and slow disks set through the fault hook that only
        // processes started with the drill's token accept (ClusterNode.Faults.cs).
        var duration = TimeSpan.FromSeconds(15);
        int seed = Enumerable.Range(1, 1000).First(s => FaultSchedule.Plan(s, duration, DrillFault.All, new[] { 1, 2, 3 }, 4).Select(p => p.Kind).Distinct().Count() == 4);
        var report = await FaultDrill.RunOnNodeProcessesAsync(new FaultDrillOptions
        {
            Duration = duration,
            Seed = seed,
            Clients = 4,
            Log = Log,
        }, NodeProcessLauncher, path: null, progress: null, CancellationToken.None);
        Describe(report);
        Assert.True(report.Passed, report.Detail);
        Assert.Equal("NodeProcesses", report.Target);
        Assert.Equal(4, report.Faults.Count);
        // How many operations ran is the machine's business (a loaded machine restarts a process slowly); that they were
        // answered, both writes and reads, and checked, is the test's.
        Assert.True(report.Succeeded > 0 && report.Writes > 0 && report.Reads > 0, $"{report.Succeeded} of {report.Operations} succeeded");
    }

    [Fact]
    [Trait("Category", "Process")]
    public async Task The_drill_reports_violations_against_node_processes_that_serve_linearizable_reads_from_any_replica()
    {
        // A drill runs for a wall-clock time, so a loaded machine gets fewer operations into it: the mutant went uncaught at
        // seed 11 once in a full suite run at load 20-60. Up to three drills (seeds 11-13); the first that catches it ends.
        ReplicationDrillReport? report = null;
        for (int seed = 11; seed <= 13 && report is not { Violations: > 0 }; seed++)
        {
            report = await FaultDrill.RunOnNodeProcessesAsync(new FaultDrillOptions
            {
                Duration = TimeSpan.FromSeconds(10),
                Seed = seed,
                Clients = 4,
                Faults = DrillFault.Partition | DrillFault.Pause,
                MutantLocalReads = true, // switched on in every node process through the fault hook
                Log = Log,
            }, NodeProcessLauncher, path: null, progress: null, CancellationToken.None);
            Describe(report);
        }
        Assert.False(report!.Passed);
        Assert.True(report.Violations > 0, "the mutant must be caught");
    }

    [Fact]
    public async Task A_node_started_without_the_drills_token_refuses_injected_faults()
    {
        // The fault hook is not a way in for anyone with the cluster secret: a node whose process has no token (every
        // node of an embedded cluster in this test process) refuses it.
        Assert.Null(Environment.GetEnvironmentVariable(Replication.Engine.Cluster.ClusterNode.FaultInjectionVariable));
        await using var cluster = await Replication.Engine.Cluster.EmbeddedCluster.StartAsync(new Replication.Engine.Cluster.ClusterOptions
        {
            Name = "fault-hook",
            Path = Path.Combine(Path.GetTempPath(), "repl-fault-hook-" + Guid.NewGuid().ToString("N")[..8]),
            NodeCount = 1,
            ShardCount = 1,
            ReplicationFactor = 1,
        }, CancellationToken.None);
        try
        {
            await using var client = await Replication.Engine.Client.ClusterClient.ConnectAsync(cluster.Endpoints, cluster.ClientSecurity, cancellationToken: CancellationToken.None);
            var e = await Assert.ThrowsAnyAsync<ReplicationException>(() => client.AdminAsync<Replication.Engine.Cluster.Empty>(Replication.Engine.Cluster.AdminOps.FaultSet, 0,
                new Replication.Engine.Cluster.FaultArgs("guess", new[] { 2 }, 0, MutantLocalReads: true), TimeSpan.FromSeconds(5), CancellationToken.None));
            Assert.Equal("FaultInjectionDisabled", e.ErrorId);
            Assert.False(cluster.Node(1)!.Host.MutantLocalReads);
        }
        finally
        {
            await cluster.RemoveAsync(deleteData: true);
        }
    }

    /// <summary>Starts a node process of tests/Replication.NodeProcess (what Start-ReplicationNode -Wait runs, without pwsh's start-up time).</summary>
    private static ProcessStartInfo NodeProcessLauncher(NodeProcessStart start)
    {
        var psi = new ProcessStartInfo("dotnet");
        psi.ArgumentList.Add(Replication.Engine.Tests.Cluster.NodeProcesses.HostDll());
        foreach (var a in new[] { "--path", start.Path, "--listen", start.Listen }) psi.ArgumentList.Add(a);
        if (start.Join is { } join)
        {
            psi.ArgumentList.Add("--join");
            psi.ArgumentList.Add(join);
        }
        return psi;
    }

    [Fact]
    public void The_fault_plan_is_a_pure_function_of_the_seed()
    {
        var nodes = new[] { 1, 2, 3 };
        var a = FaultSchedule.Plan(5, TimeSpan.FromSeconds(60), DrillFault.All, nodes, 4);
        var b = FaultSchedule.Plan(5, TimeSpan.FromSeconds(60), DrillFault.All, nodes, 4);
        var c = FaultSchedule.Plan(6, TimeSpan.FromSeconds(60), DrillFault.All, nodes, 4);
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.True(a.Count >= 10, $"{a.Count} faults in a minute");
        Assert.All(a, p => Assert.True(p.At >= FaultSchedule.WarmUp(TimeSpan.FromSeconds(60)) && p.At + p.Hold <= TimeSpan.FromSeconds(55)));
        Assert.Equal(4, a.Select(p => p.Kind).Distinct().Count());
        Assert.All(FaultSchedule.Plan(5, TimeSpan.FromSeconds(60), DrillFault.Kill | DrillFault.Pause, nodes, 4), p => Assert.True(p.Kind is DrillFault.Kill or DrillFault.Pause));
    }

    [Fact]
    public async Task Options_out_of_bounds_are_refused_before_anything_runs()
    {
        var e = await Assert.ThrowsAsync<InvalidDrillOptionsException>(() => FaultDrill.RunOnNodeProcessesAsync(
            new FaultDrillOptions { Clients = 0 }, _ => throw new InvalidOperationException("must not start anything"), null, null, CancellationToken.None));
        Assert.Equal("InvalidDrillOptions", e.ErrorId);
        Assert.Contains("Clients", e.Message);
        await Assert.ThrowsAsync<InvalidDrillOptionsException>(() => FaultDrill.RunOnNewClusterAsync(new FaultDrillOptions { Duration = TimeSpan.FromSeconds(1) }, null, null, CancellationToken.None));
    }

    private void Describe(ReplicationDrillReport r)
    {
        output.WriteLine($"seed {r.Seed}: {r.Operations} operations ({r.Succeeded} ok, {r.Failed} failed, {r.Unknown} unknown; {r.Writes} writes, {r.Reads} reads) in {r.Elapsed.TotalSeconds:0.0} s");
        output.WriteLine($"faults: {string.Join(", ", r.Faults.Select(kv => $"{kv.Key} {kv.Value}"))}; longest unavailability {r.LongestUnavailability.TotalMilliseconds:0} ms");
        output.WriteLine($"lost {r.AcknowledgedWritesLost}, violations {r.Violations}, undecided {r.Undecided} of {r.KeysChecked} keys; passed {r.Passed}");
        foreach (var e in r.FaultLog) output.WriteLine("  " + e);
        if (r.Detail is not null) output.WriteLine(r.Detail.Length > 3000 ? r.Detail[..3000] : r.Detail);
    }
}
