namespace Replication.Engine.Client;

/// <summary>Timeouts and routing of a <see cref="ClusterClient"/>.</summary>
public sealed record ClusterClientOptions
{
    /// <summary>Connect plus handshake, per endpoint tried.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>Requests without a timeout of their own (status, stop and start of a node).</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Added to a request's own timeout (the server's deadline) before the client gives up on an answer.</summary>
    public TimeSpan NetworkMargin { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>Keys per scan page.</summary>
    public int ScanPageSize { get; init; } = 500;
    /// <summary>
    /// Key requests go straight to the shard's leader (ClusterClient.Routing.cs). Off only for the fault drill's local-reads
    /// mutant: its clients then send everything to the node they dialled, as clients did before leader routing, so the
    /// mutant's local reads land on followers, where they are wrong, and the drill must see it.
    /// </summary>
    internal bool RouteToLeaders { get; init; } = true;
}
