namespace Replication;

/// <summary>
/// What a node's replicas do in the cluster. <see cref="Voter"/>: the ring places voters on it, it counts toward quorums
/// and may lead. <see cref="Learner"/>: it holds a non-voting copy of every shard (asynchronous replication): it counts
/// toward no quorum, is never a voter of any group (the metadata group included) and leads nothing. A node joins with
/// its role (Start-ReplicationNode -Role, Add-ReplicationNode -Learner), so a learner is never a voter, not even
/// between registering and being marked; Add-ReplicationNode -Endpoint -Learner turns a running voter into one.
/// </summary>
// 64-bit: ConvertTo-Json writes it by name (as NodeState). Values are explicit and append-only (they travel on the wire).
public enum NodeRole : long
{
    Voter = 0,
    Learner = 1,
}
