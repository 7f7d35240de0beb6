using Replication.Engine.Verification;

namespace Replication.Simulation.Simulation;

/// <summary>A client operation in flight to a node. <see cref="Lease"/>: a get served under the leader lease when valid.</summary>
public sealed record ClientRequest(int OpId, int Client, KvInput Input, bool Lease);

/// <summary>How a node answered a request.</summary>
public enum ReplyKind
{
    Ok,
    /// <summary>Refused: this node is not the leader (nothing happened).</summary>
    NotLeader,
    /// <summary>The proposal's entry was overwritten after a leader change (never applied).</summary>
    Lost,
    /// <summary>A read abandoned because leadership was lost before it was confirmed.</summary>
    ReadAborted,
    /// <summary>The shard no longer owns the key (it split): nothing happened; the client routes again with a newer map.</summary>
    WrongShard,
}
