namespace Replication.Engine.Storage;

/// <summary>
/// Results of the ops of one applied Raft entry, in the order of its ops. Empty for an entry
/// that carries no ops (a leader's no-op, a membership change), which still advanced the
/// applied index.
/// </summary>
public sealed record EntryApplyResult(long Index, IReadOnlyList<KvOpResult> Results);
