namespace Replication;

/// <summary>
/// The result of one fault drill (Invoke-ReplicationFaultDrill): what ran, what was injected, and what the checks
/// found. <see cref="Passed"/> needs all three verdicts clean: no linearizability violation, no acknowledged write
/// lost, and no key left undecided by the checker's budget (an undecided history is not a pass). The fault schedule
/// replays exactly from <see cref="Seed"/> (<see cref="Replay"/>); the operations' timing is the real machine's and
/// differs from run to run. Immutable.
/// </summary>
public sealed record ReplicationDrillReport
{
    /// <summary>The cluster drilled (its name).</summary>
    public required string Cluster { get; init; }
    /// <summary>"Embedded" (an existing embedded cluster), "Embedded (temporary)", or "NodeProcesses".</summary>
    public required string Target { get; init; }
    public required int Seed { get; init; }
    /// <summary>The workload's planned length.</summary>
    public required TimeSpan Duration { get; init; }
    /// <summary>The whole drill's wall time: set-up, workload, read-back, check.</summary>
    public TimeSpan Elapsed { get; init; }
    public int Nodes { get; init; }
    public int Clients { get; init; }
    /// <summary>Client operations recorded (the final read-back not included).</summary>
    public long Operations { get; init; }
    /// <summary>Of which answered (a failed compare-and-set counts: it was answered), ...</summary>
    public long Succeeded { get; init; }
    /// <summary>... refused before they could take effect, or reads that failed, ...</summary>
    public long Failed { get; init; }
    /// <summary>... and writes of unknown outcome (a timeout, OutcomeUnknown, a cut connection).</summary>
    public long Unknown { get; init; }
    public long Writes { get; init; }
    public long Reads { get; init; }
    /// <summary>Faults injected, by kind.</summary>
    public required IReadOnlyDictionary<string, int> Faults { get; init; }
    /// <summary>Every fault injected, in order.</summary>
    public required IReadOnlyList<DrillFaultEvent> FaultLog { get; init; }
    /// <summary>The longest time any shard went without a successful operation on its keys, while faults were injected.</summary>
    public TimeSpan LongestUnavailability { get; init; }
    /// <summary>Acknowledged writes whose effect is missing from the final read-back of their key. Must be 0.</summary>
    public int AcknowledgedWritesLost { get; init; }
    /// <summary>Keys whose history is not linearizable. Must be 0.</summary>
    public int Violations { get; init; }
    /// <summary>Keys the checker could not decide within its budget. Must be 0 for a pass.</summary>
    public int Undecided { get; init; }
    public int KeysChecked { get; init; }
    /// <summary>The first violation or lost write, explained (the key's operations), or null.</summary>
    public string? Detail { get; init; }
    /// <summary>The command that replays the same fault schedule.</summary>
    public required string Replay { get; init; }
    public bool Passed => Violations == 0 && AcknowledgedWritesLost == 0 && Undecided == 0;
}
