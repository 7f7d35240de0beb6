namespace Replication.Engine.Member;

/// <summary>A registered node: where it listens, and the join token that admitted it (a repeated join with it is answered with the same id).</summary>
public sealed record NodeEntry(string Endpoint, Guid Token);
