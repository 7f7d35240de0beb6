namespace Replication.Simulation.Placement;

/// <summary>
/// One scripted history of a cluster's membership for the placement simulation. Immutable.
/// </summary>
/// <param name="Name">Printed in the table.</param>
/// <param name="InitialNodes">Nodes at the start (ids 1..InitialNodes).</param>
/// <param name="Changes">One entry per change: +k = k nodes join at once, -k = k nodes (chosen by the
/// seed among the running ones) are drained and removed at once.</param>
/// <param name="Zones">0 for no zone labels; otherwise node i is in zone "z" + (i - 1) % Zones.</param>
public sealed record PlacementScenario(string Name, int InitialNodes, IReadOnlyList<int> Changes, int Zones = 0)
{
    /// <summary>Grows one node at a time from <paramref name="from"/> to <paramref name="to"/> nodes.</summary>
    public static PlacementScenario Grow(int from, int to, int zones = 0) =>
        new($"grow {from}->{to} by 1" + ZoneSuffix(zones), from, Enumerable.Repeat(1, to - from).ToArray(), zones);

    /// <summary>Shrinks one node at a time from <paramref name="from"/> to <paramref name="to"/> nodes.</summary>
    public static PlacementScenario Shrink(int from, int to, int zones = 0) =>
        new($"shrink {from}->{to} by 1" + ZoneSuffix(zones), from, Enumerable.Repeat(-1, from - to).ToArray(), zones);

    /// <summary>At <paramref name="nodes"/> nodes, <paramref name="rounds"/> times: one node joins, then one leaves.</summary>
    public static PlacementScenario Churn(int nodes, int rounds, int zones = 0) =>
        new($"{nodes} nodes, {rounds}x join+leave" + ZoneSuffix(zones), nodes, Enumerable.Range(0, 2 * rounds).Select(i => i % 2 == 0 ? 1 : -1).ToArray(), zones);

    /// <summary>At <paramref name="nodes"/> nodes, <paramref name="rounds"/> times: <paramref name="burst"/> join at once, then as many leave at once.</summary>
    public static PlacementScenario Bursts(int nodes, int burst, int rounds, int zones = 0) =>
        new($"{nodes} nodes, {rounds}x {burst} join+{burst} leave" + ZoneSuffix(zones), nodes,
            Enumerable.Range(0, 2 * rounds).Select(i => i % 2 == 0 ? burst : -burst).ToArray(), zones);

    private static string ZoneSuffix(int zones) => zones > 0 ? $", {zones} zones" : "";
}
