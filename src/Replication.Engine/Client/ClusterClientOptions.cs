namespace Replication.Engine.Client;

/// <summary>Timeouts of a <see cref="ClusterClient"/>.</summary>
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
}
