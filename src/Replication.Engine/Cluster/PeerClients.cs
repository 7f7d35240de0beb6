using System.Collections.Concurrent;
using Replication.Engine.Client;
using Replication.Engine.Transport;

namespace Replication.Engine.Cluster;

/// <summary>
/// This node's client connections to the other nodes (authenticated with the same cluster secret,
/// as any client), used to forward requests to shard leaders, ask for peers' status and join.
/// One pipelined connection per peer, dialled on first use and re-dialled after it broke.
/// Thread-safe.
/// </summary>
internal sealed class PeerClients : IAsyncDisposable
{
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(2);

    private readonly Security.TransportSecurity _security;
    private readonly Guid _clusterId;
    private readonly Func<int, string?> _endpointOf;
    private readonly Func<string> _clusterName;
    private readonly ConcurrentDictionary<int, ClientConnection> _connections = new();
    private readonly ConcurrentDictionary<int, SemaphoreSlim> _dialGates = new();
    private volatile bool _disposed;

    public PeerClients(Security.TransportSecurity security, Guid clusterId, Func<int, string?> endpointOf, Func<string> clusterName)
    {
        _security = security;
        _clusterId = clusterId;
        _endpointOf = endpointOf;
        _clusterName = clusterName;
    }

    /// <summary>
    /// Sends <paramref name="make"/>'s request to node <paramref name="node"/> and waits for the answer.
    /// An error answer is thrown as its <see cref="RemoteOperationException"/>.
    /// </summary>
    /// <exception cref="PeerUnreachableException">The peer could not be dialled (nothing was sent).</exception>
    /// <exception cref="ConnectionLostException">The connection broke; <paramref name="sent"/> says whether the request left.</exception>
    /// <exception cref="TimeoutException">No answer in time (the request was sent).</exception>
    public async Task<ClientResponse> SendAsync(int node, Func<long, ClientRequest> make, TimeSpan timeout, SentFlag<bool> sent, CancellationToken ct)
    {
        var connection = await ConnectionAsync(node, ct).ConfigureAwait(false);
        var response = await connection.SendAsync(make, timeout, sent, ct).ConfigureAwait(false);
        return response is ErrorResponse e ? throw e.Error.ToException() : response;
    }

    private async Task<ClientConnection> ConnectionAsync(int node, CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_connections.TryGetValue(node, out var open) && !open.IsClosed) return open;
        var gate = _dialGates.GetOrAdd(node, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_connections.TryGetValue(node, out open) && !open.IsClosed) return open;
            if (open is not null) await open.DisposeAsync().ConfigureAwait(false);
            string endpoint = _endpointOf(node) ?? throw new PeerUnreachableException(node, "its endpoint is not known yet");
            try
            {
                var connection = await ClientConnection.ConnectAsync(endpoint, _security, _clusterId, ConnectTimeout, ct).ConfigureAwait(false);
                connection.ClusterName = _clusterName();
                _connections[node] = connection;
                if (_disposed) await connection.DisposeAsync().ConfigureAwait(false);
                return connection;
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ProtocolException or AuthenticationFailedException or FormatException
                || (e is OperationCanceledException && !ct.IsCancellationRequested))
            {
                throw new PeerUnreachableException(node, $"{endpoint}: {(e is OperationCanceledException ? "no answer in time" : e.Message)}");
            }
        }
        finally { gate.Release(); }
    }

    public async ValueTask DisposeAsync()
    {
        _disposed = true;
        foreach (var node in _connections.Keys)
            if (_connections.TryRemove(node, out var c)) await c.DisposeAsync().ConfigureAwait(false);
    }
}

/// <summary>Internal: a peer could not be dialled, so nothing was sent to it.</summary>
internal sealed class PeerUnreachableException(int node, string reason) : Exception($"Node {node} is unreachable ({reason}).")
{
    public int Node { get; } = node;
}
