namespace Replication.Engine.Raft;

/// <summary>
/// One entry of a Raft log. Immutable. <see cref="Data"/> is opaque to the core; an empty
/// <see cref="EntryType.Normal"/> entry is the no-op a new leader appends for its term
/// (Raft thesis 6.4: a leader commits an entry of its own term before serving reads).
/// </summary>
public sealed record LogEntry(long Index, long Term, EntryType Type, byte[] Data)
{
    /// <summary>Approximate size in bytes, used for flow-control budgets.</summary>
    public int Size => Data.Length + 17;

    public override string ToString() => $"{Index}@{Term}{(Type == EntryType.Normal ? "" : "/" + Type)}({Data.Length}B)";
}
