namespace Replication;

/// <summary>
/// A key range [<see cref="StartKey"/>, <see cref="EndKey"/>) (null = open end) where replica
/// <see cref="Node"/> differs from the leader. <see cref="Keys"/> lists the exact differing keys
/// (absent on one side, or a different value, version or modified index) when the range was
/// small enough to drill into; it is empty otherwise.
/// </summary>
public sealed record DivergentRange(int Node, int Leaf, string? StartKey, string? EndKey, IReadOnlyList<string> Keys)
{
    public override string ToString() => $"node {Node}: [{StartKey ?? "-inf"}, {EndKey ?? "+inf"})" + (Keys.Count > 0 ? $" keys {string.Join(", ", Keys)}" : "");
}
