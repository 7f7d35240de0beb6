using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// What became of one proposed log entry: applied with per-operation <see cref="Results"/>;
/// <see cref="Lost"/> (overwritten by a new leader, never applied, safe to retry); or, for
/// <see cref="WriteConcern.Leader"/>, durable on the leader with results not yet known (<see cref="Results"/> null).
/// </summary>
internal sealed record ProposalOutcome(long Index, IReadOnlyList<KvOpResult>? Results, bool Lost)
{
    public static readonly ProposalOutcome LostEntry = new(0, null, Lost: true);
}
