namespace Replication.Simulation.Simulation;

/// <summary>One failing seed: its first violation, and the one command that replays it.</summary>
public sealed record SimFailure(int Seed, string Violation, string ReplayCommand, ulong Digest);
