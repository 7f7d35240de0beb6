namespace Replication.Engine.Ring;

/// <summary>
/// One virtual node: a position on the 64-bit ring owned by a node. The token owns the arc of hashes
/// after the previous token up to and including its own position. Immutable value.
/// </summary>
/// <param name="Position">Where the token sits (<see cref="HashRing.TokenPosition"/>).</param>
/// <param name="Node">The owning node's id.</param>
/// <param name="Index">Which of the node's tokens this is, 0 .. TokensPerNode-1.</param>
public readonly record struct RingToken(ulong Position, int Node, int Index);
