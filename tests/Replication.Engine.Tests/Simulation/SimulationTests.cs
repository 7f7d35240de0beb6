using Replication.Simulation.Simulation;
using Xunit;
using Xunit.Abstractions;

namespace Replication.Engine.Tests.Simulation;

/// <summary>
/// The deterministic simulator in CI: a CI-sized number of seeds through the same runner as
/// <c>./build.ps1 Simulate</c>, exact replay, and the mutants that prove the checks have teeth.
/// </summary>
public sealed class SimulationTests(ITestOutputHelper output)
{
    /// <summary>Seeds per CI run; a nightly run is <c>./build.ps1 Simulate -Seeds 100000</c>.</summary>
    private const int CiSeeds = 500;

    [Fact]
    public void RandomSeedsFindNoViolation()
    {
        var log = new StringWriter();
        var summary = SimRunner.Run(1, CiSeeds, Mutant.None, log);
        SimRunner.Print(summary, log);
        output.WriteLine(log.ToString());
        Assert.Equal(CiSeeds, summary.SeedsRun);
        Assert.True(summary.OperationsChecked > CiSeeds * 100, "clients did too little");
        Assert.True(summary.Violations == 0, log.ToString());
        Assert.Equal(0, summary.UndecidedChecks);
        // The fault classes the lease, stale-message and membership checks depend on did occur.
        foreach (var fault in new[] { "pause", "delay beyond election timeout", "held by partition", "delivered after partition", "conf change proposed while one is pending", "crash mid-write", "quiesce sent" })
            Assert.True(summary.Faults.GetValueOrDefault(fault) > 0, $"no '{fault}' in {CiSeeds} seeds");
        // Ring mode (Simulator.Moves.cs): replicas moved by the product's placement code, machines joining and leaving,
        // operators' moves, and replicas dropped and hosted again, all under the same faults.
        foreach (var fault in new[] { "ring join", "ring leave", "ring node left", "ring move", "ring unpin", "ring replica moved", "ring replica dropped", "ring replica hosted" })
            Assert.True(summary.Faults.GetValueOrDefault(fault) > 0, $"no '{fault}' in {CiSeeds} seeds");
        // Forced recovery (Simulator.ForcedRecovery.cs): a majority destroyed, the longest log forced to lead alone, and
        // every acknowledged write checked against the reported window.
        foreach (var fault in new[] { "forced recovery", "acknowledged write at recovery" })
            Assert.True(summary.Faults.GetValueOrDefault(fault) > 0, $"no '{fault}' in {CiSeeds} seeds");
        // Splits (Simulator.Splits.cs): split entries proposed and applied under the faults, the coordinator lost between the
        // steps (the control loop mends the map), clients routed again with the newer map, replicas of a new group created by
        // the split and joining it empty, crashes of the machines right after a split and of the new groups' replicas, and in
        // ring mode the new shards' replicas moved by the ring's placement.
        foreach (var fault in new[] { "split proposed", "split applied", "split in the map", "split coordinator lost before the map update",
            "split coordinator lost after the proposal", "client routed again after a split", "split group replica created",
            "split group replica joins empty", "crash right after a split applied", "crash of a split group's replica",
            "ring replica of a split shard moved", "ring replica of a split shard hosted" })
            Assert.True(summary.Faults.GetValueOrDefault(fault) > 0, $"no '{fault}' in {CiSeeds} seeds");
    }

    [Fact]
    public void ReportDoesNotDependOnTheNumberOfWorkers()
    {
        string Report(int workers, bool stop)
        {
            var log = new StringWriter();
            var summary = SimRunner.Run(1, 24, Mutant.AckBeforePersist, log, stopAtFirstFailure: stop, workers: workers);
            SimRunner.Print(summary, log);
            return log.ToString();
        }
        string one = Report(1, stop: false);
        Assert.Contains("FAILED", one); // failures are listed, by seed
        Assert.Equal(one, Report(3, stop: false));
        Assert.Equal(Report(1, stop: true), Report(3, stop: true));
    }

    [Fact]
    public void SameSeedReplaysExactly()
    {
        var a = Simulator.Run(SimOptions.FromSeed(42, trace: true));
        var b = Simulator.Run(SimOptions.FromSeed(42, trace: true));
        Assert.Equal(a.Digest, b.Digest);
        Assert.Equal(a.Trace, b.Trace);
        Assert.Equal(a.History, b.History);
        var c = Simulator.Run(SimOptions.FromSeed(43));
        Assert.NotEqual(a.Digest, c.Digest);
        // Seed 48 runs in ring mode (Simulator.Moves.cs): placement, hosting and drops replay exactly as well.
        var ring = SimOptions.FromSeed(48, trace: true);
        Assert.True(ring.Ring);
        var r1 = Simulator.Run(ring);
        var r2 = Simulator.Run(ring);
        Assert.Equal(r1.Digest, r2.Digest);
        Assert.Equal(r1.Trace, r2.Trace);
        // Seed 21 splits shard 0 (Simulator.Splits.cs): split groups, routing and the map replay exactly too.
        var split = SimOptions.FromSeed(21, trace: true);
        Assert.True(split.Splits);
        var s1 = Simulator.Run(split);
        var s2 = Simulator.Run(split);
        Assert.Equal(s1.Digest, s2.Digest);
        Assert.Equal(s1.Trace, s2.Trace);
    }

    [Fact]
    public void FailingSeedPrintsOneReplayCommand()
    {
        // The first seed that catches the mutant (which one depends on what the simulator injects).
        var log = new StringWriter();
        var summary = SimRunner.Run(1, 10, Mutant.FollowerKeepsConflicts, log, stopAtFirstFailure: true);
        var r = Assert.Single(summary.Failures);
        int seed = r.Seed;
        Assert.Equal($"./build.ps1 Simulate -Seed {seed} -Mutant FollowerKeepsConflicts", r.ReplayCommand);
        Assert.Single(log.ToString().Split('\n'), l => l.Contains("replay:"));
        Assert.Equal(r.Digest, Simulator.Run(SimOptions.FromSeed(seed, Mutant.FollowerKeepsConflicts)).Digest);
    }

    /// <summary>
    /// Before replica ids the product reused a node's member id when the node took a shard back (ring mode's
    /// ReplicaIdReused schedule, now a mutant). Its simplest failure, an empty replica voting a stale member in (seeds 71
    /// and 337 of 400), went first, with the core's rule that a replica knowing no configuration grants no vote: those
    /// seeds pass even with ids reused, while the same schedule with the rule lifted (EmptyReplicaVotes) fails at 71.
    /// Seed 71 runs shard splits since they were simulated (Simulator.Splits.cs) and no longer takes a shard back; 337 was
    /// then the first seed that caught EmptyReplicaVotes, until reads shared one heartbeat round at a time (RaftNode.Read.cs),
    /// which reshuffled what the seeds do: now 263 (the only one of seeds 1-600).
    /// </summary>
    [Fact]
    public void AnEmptyReplicaNoLongerVotesAStaleMemberIn()
    {
        foreach (int seed in new[] { 263 })
        {
            var summary = SimRunner.Run(seed, 1, Mutant.ReplicaIdReused, new StringWriter());
            Assert.True(summary.Faults.GetValueOrDefault("ring replica id reused") > 0, $"seed {seed} reused no replica id");
            Assert.Empty(summary.Failures);
            Assert.Single(SimRunner.Run(seed, 1, Mutant.EmptyReplicaVotes, new StringWriter()).Failures);
        }
    }

    /// <summary>
    /// What the empty-replica rule could not close (a reused replica that has heard something, e.g. one that installed a
    /// snapshot from before its predecessor's removal, believes itself a voter with an old log), replica ids close: seed
    /// 1102, the first of seeds 1-3,000 that fails with ids reused (ReplicaIdReused; then 1322, 1519, 2128, 2163; 967 and 954
    /// were the ones before schedule changes reshuffled what the seeds do: a leader's appends leaving before its own write,
    /// then reads sharing one heartbeat round at a time; the mutant's first seed is too far for CI's mutant sweep, so it is
    /// pinned here), passes as the product runs now, every replica a machine takes back under a new member id and none
    /// refused by a tombstone.
    /// </summary>
    [Fact]
    public void ATakenBackShardRejoinsUnderANewReplicaId()
    {
        foreach (int seed in new[] { 1102 })
        {
            var product = RunAsPinned(seed, Mutant.None);
            Assert.Empty(product.Violations);
            Assert.True(product.Faults.GetValueOrDefault("ring replica hosted") > 0, $"seed {seed} hosted no new replica");
            Assert.Equal(0, product.Faults.GetValueOrDefault("ring replica id reused"));
            Assert.Equal(0, product.Faults.GetValueOrDefault("ring replica refused (tombstone)"));
            var reused = RunAsPinned(seed, Mutant.ReplicaIdReused);
            Assert.True(reused.Faults.GetValueOrDefault("ring replica id reused") > 0, $"seed {seed} reused no replica id under the mutant");
            Assert.Single(reused.Violations);
        }
    }

    /// <summary>
    /// A bug of the product the split simulation found, since fixed (Simulator.Splits.cs, Mutant.SplitGroupFoundedAtZero): a split group
    /// is founded at index 0 with the moved rows below its log, so a replica of the old shard that installed a snapshot past
    /// the split joins the new shard empty and is sent the log from index 1, without the rows. Seed 21 ran that schedule
    /// (its machine 3 skipped the split and joined): the old way, shard 1's replicas differed; with the founding state a
    /// snapshot at index 1 (the product's way since the fix, and the simulator's default), the joiner is sent a snapshot and
    /// all is well. Since reads share one heartbeat round at a time (RaftNode.Read.cs), which reshuffled the schedules, seed
    /// 334 ran it; since a leader resumes replication after the index of the snapshot it actually sent (RaftNode.ReportSnapshot),
    /// which reshuffled them again, seed 100 runs it (92, 117 and 157 too, with shard 1).
    /// </summary>
    [Fact]
    public void AReplicaThatSkippedTheSplitJoinsTheNewShardBySnapshot()
    {
        var fixedRun = RunAsPinned(100, Mutant.None);
        Assert.True(fixedRun.Faults.GetValueOrDefault("split group replica joins empty") > 0, "seed 100 hosted no replica that skipped the split");
        Assert.Empty(fixedRun.Violations);
        var asIs = RunAsPinned(100, Mutant.SplitGroupFoundedAtZero);
        Assert.Contains("replicas of shard 2 differ", Assert.Single(asIs.Violations));
    }

    /// <summary>
    /// A seed pinned for its schedule before quiescence existed, run as it ran then: quiescence off (a seed that quiesces
    /// draws quiet spells and liveness signals, which reshuffles what it does; without it the run is the same as before).
    /// </summary>
    private static SimResult RunAsPinned(int seed, Mutant mutant) =>
        Simulator.Run(SimOptions.FromSeed(seed, mutant) with { Quiesce = false, QuietEveryTicks = 0, QuietTicks = 0 });

    /// <summary>
    /// Each mutant must be caught within <paramref name="maxSeeds"/> seeds (from seed 1); prints after
    /// how many. First seed caught, measured with pauses, drift, stale messages and unchecked
    /// membership proposals in the simulator: FollowerKeepsConflicts 1, ReadWithoutReadIndex 1,
    /// JoinerMembershipNotRecorded 3, CommitOldTerm 4, LeaseCountsDeliveredTicks 5, AckBeforePersist 6,
    /// ClockDriftBeyondBound 8, VoteNotPersisted 12, ConcurrentConfChange 17, StaleAppendAccepted 268
    /// (about one seed in 200: a stale append harms only a follower that does not yet know the newer
    /// commit, e.g. one just restarted); the ring-mode mutants (two seeds in five run moves):
    /// EmptyReplicaVotes 71, RemoveBeforeCaughtUp 86 (ReplicaIdReused itself, the id reuse of the product before replica
    /// ids with the empty-replica rule in force, first at seed 954, then 967, of 1,000: too far for this sweep, so
    /// ATakenBackShardRejoinsUnderANewReplicaId pins both seeds; README, "The ring"); ForcedRecoveryFromCommitted 2 (under
    /// it every seed outside ring mode runs a forced recovery); QuiescedLeaseHeld 9 (six of seeds 1-100: a quiesced leader
    /// paused or cut off while the others elect); SnapshotCarriesNoRange 61 before quiescence reshuffled the seeds that
    /// quiesce, 122 since (then 124, 155, 167, 189). The bounds leave room for the simulator to change (which
    /// reshuffles what each seed does) without letting a mutant slip by.
    /// </summary>
    [Theory]
    [InlineData(Mutant.FollowerKeepsConflicts, 10)]
    [InlineData(Mutant.AckBeforePersist, 50)]
    [InlineData(Mutant.CommitOldTerm, 150)]
    [InlineData(Mutant.VoteNotPersisted, 100)]
    [InlineData(Mutant.ReadWithoutReadIndex, 50)]
    [InlineData(Mutant.JoinerMembershipNotRecorded, 50)]
    [InlineData(Mutant.LeaseCountsDeliveredTicks, 50)]
    [InlineData(Mutant.ClockDriftBeyondBound, 100)]
    [InlineData(Mutant.StaleAppendAccepted, 1000)]
    [InlineData(Mutant.ConcurrentConfChange, 100)]
    [InlineData(Mutant.RemoveBeforeCaughtUp, 400)]
    [InlineData(Mutant.EmptyReplicaVotes, 400)]
    [InlineData(Mutant.ForcedRecoveryFromCommitted, 50)]
    [InlineData(Mutant.OwnershipCheckedAtProposal, 50)]
    [InlineData(Mutant.SplitGroupFoundedAtZero, 50)]
    [InlineData(Mutant.QuiescedLeaseHeld, 100)]
    [InlineData(Mutant.SnapshotCarriesNoRange, 200)]
    public void MutantIsCaught(Mutant mutant, int maxSeeds)
    {
        var log = new StringWriter();
        var summary = SimRunner.Run(1, maxSeeds, mutant, log, stopAtFirstFailure: true);
        output.WriteLine($"{mutant}: caught after {summary.SeedsRun} seed(s)");
        output.WriteLine(log.ToString());
        Assert.True(summary.Failures.Count == 1, $"{mutant} survived {maxSeeds} seeds");
    }
}
