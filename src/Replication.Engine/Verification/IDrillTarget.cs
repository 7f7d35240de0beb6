using Replication.Engine.Security;

namespace Replication.Engine.Verification;

/// <summary>
/// The nodes a fault drill controls, and how it hurts them: an embedded cluster of this process
/// (<see cref="EmbeddedDrillTarget"/>: internal hooks) or node processes it started (<see cref="ProcessDrillTarget"/>:
/// signals, and a fault hook for partitions and slow disks). The drill injects one fault at a time and heals it before
/// the next; <see cref="HealAllAsync"/> undoes whatever is still in force (also after a failure or a cancellation).
/// </summary>
internal interface IDrillTarget : IAsyncDisposable
{
    string ClusterName { get; }
    /// <summary>What the report calls it ("Embedded", "Embedded (temporary)", "NodeProcesses").</summary>
    string Description { get; }
    IReadOnlyList<int> NodeIds { get; }
    int ShardCount { get; }
    /// <summary>The faults it can inject.</summary>
    DrillFault Supported { get; }
    /// <summary>Where clients connect, and how.</summary>
    IReadOnlyList<string> Endpoints { get; }
    TransportSecurity Security { get; }

    /// <summary>The node leading <paramref name="shard"/> now, as far as can be learned quickly; 0 when unknown.</summary>
    Task<int> LeaderOfAsync(int shard, CancellationToken cancellationToken);

    /// <summary>Injects <paramref name="kind"/> on <paramref name="node"/> (<paramref name="slowDelay"/>: per log write, for SlowDisk).</summary>
    Task InjectAsync(DrillFault kind, int node, TimeSpan slowDelay, CancellationToken cancellationToken);

    /// <summary>Heals a fault injected by <see cref="InjectAsync"/>: a killed node is started again from its files.</summary>
    Task HealAsync(DrillFault kind, int node, CancellationToken cancellationToken);

    /// <summary>Best effort, never throws: every node running, resumed, connected and at full speed again.</summary>
    Task HealAllAsync();

    /// <summary>Waits (bounded) until every shard has a leader that can serve a linearizable read.</summary>
    Task WaitForLeadersAsync(TimeSpan bound, CancellationToken cancellationToken);

    /// <summary>Turns the drill's mutant on or off on every running node (see FaultDrillOptions.MutantLocalReads).</summary>
    Task SetMutantAsync(bool on, CancellationToken cancellationToken);
}
