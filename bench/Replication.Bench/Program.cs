// Replication.Bench (./build.ps1 Bench): measures the deployed shape of Replication, three node processes
// on loopback driven by a load generator in its own process, side by side with a 3-member etcd driven by
// the same load generator, against the physical limits of the same disk. Measures; never asserts speed.
// Issue 11 describes what is measured and why; README "## Benchmarks" has a run's table.
//
// One executable, three roles, so the node and load processes are exactly this build:
//   Replication.Bench [options]                   the orchestrator (Orchestrator.cs; BenchOptions.Usage)
//   Replication.Bench node --path D --listen H:P  one Replication node (NodeRole.cs)
//   Replication.Bench load --spec FILE            the load generator for one round (LoadRole.cs)
return args.FirstOrDefault() switch
{
    "node" => await NodeRole.RunAsync(args[1..]),
    "load" => await LoadRole.RunAsync(args[1..]),
    _ => await Orchestrator.RunAsync(args),
};
