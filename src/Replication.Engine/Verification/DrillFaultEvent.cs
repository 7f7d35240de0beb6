namespace Replication;

/// <summary>
/// One fault a drill injected: its kind, the node it hit (and why that one: picked by the seed, or the leader of a shard
/// at that moment), when it started (from the start of the workload) and how long it held before it was healed.
/// </summary>
public sealed record DrillFaultEvent(DrillFault Kind, int Node, TimeSpan At, TimeSpan Held, string Detail)
{
    public override string ToString() => $"{At.TotalSeconds,6:0.0}s {Kind} node {Node} for {Held.TotalMilliseconds:0} ms ({Detail})";
}
