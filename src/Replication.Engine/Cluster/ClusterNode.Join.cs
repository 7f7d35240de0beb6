using System.Diagnostics;
using Replication.Engine.Client;
using Replication.Engine.Storage;
using Replication.Engine.Transport;

namespace Replication.Engine.Cluster;

/// <summary>
/// Joining, both sides. The new node dials the seed as a client with the secret (the handshake tells
/// it the cluster id) and sends a Join request with its listen endpoint and its join token; any node
/// routes it to the metadata group's leader, which registers the node through the metadata log (the
/// next id, written only if that id is still free) and answers with the id, the cluster id and the
/// metadata. A token already registered gets its id back (and its endpoint updated): joining twice,
/// or again after a crash mid-join, is idempotent. The join carries the node's role and zone, written
/// in the same registry entry: a learner-only node is one from its first metadata entry on, so no
/// placement, metadata membership or leader balancing ever counts it as a voter (marking it after the
/// join left a window in which the ring placed voters on it). Everything after that is the control
/// loop's job on the leaders: the new node becomes a learner of the metadata group (then a voter while
/// it has fewer than five and is no learner-only node), and the placement brings shards to it
/// (ClusterNode.Control.cs).
/// </summary>
public sealed partial class ClusterNode
{
    private readonly SemaphoreSlim _joinGate = new(1, 1);

    private static async Task<(int NodeId, Guid ClusterId, string Metadata)> JoinThroughSeedAsync(NodeOptions options, NodeIdentity identity, CancellationToken ct)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(options.JoinTimeout.TotalSeconds * Stopwatch.Frequency);
        string seed = options.Join!;
        string why = "";
        string? refusal = null; // the seed's last answer why it could not add the node now (kept: a later timeout says less)
        while (true)
        {
            var remaining = Remaining(deadline);
            if (remaining <= TimeSpan.Zero)
                throw new EndpointUnreachableException($"Could not join through {seed} within {options.JoinTimeout.TotalSeconds:0.#} s: {why}"
                    + (refusal is not null && refusal != why ? $" (before that, the seed answered: {refusal})" : "")) { Target = seed };
            ClientConnection? connection = null;
            try
            {
                connection = await ClientConnection.ConnectAsync(seed, options.Security, identity.ClusterId, PeerClients.ConnectTimeout, ct).ConfigureAwait(false);
            }
            catch (AuthenticationFailedException e)
            {
                throw new AuthenticationFailedException($"Join refused: the node at {seed} and this node do not share the cluster secret.") { Target = e.Target ?? seed };
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                // The seed is there but slow to finish the handshake (a loaded machine, a process
                // still starting): ask again until the join deadline.
                why = $"the seed node {seed} did not complete the handshake in {PeerClients.ConnectTimeout.TotalSeconds:0.#} s";
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ProtocolException)
            {
                // A refused or broken connection is not retried: the operator gave a wrong endpoint or started it too early.
                throw new EndpointUnreachableException($"Join refused: the seed node {seed} did not answer ({e.Message}).") { Target = seed };
            }
            if (connection is not null)
            {
                await using (connection.ConfigureAwait(false))
                {
                    try
                    {
                        var response = await connection.SendAsync(id => new JoinRequest(id, options.Listen, identity.JoinToken, options.Role, options.Zone), remaining, new SentFlag<bool>(false), ct).ConfigureAwait(false);
                        if (response is JoinResponse joined) return (joined.NodeId, joined.ClusterId, joined.Metadata);
                        if (response is ErrorResponse error)
                        {
                            if (error.Error.Kind is not (ReplicationErrorKind.Unavailable or ReplicationErrorKind.Timeout)) throw error.Error.ToException();
                            why = refusal = error.Error.Message; // no metadata leader yet, or its quorum is down: ask again
                        }
                    }
                    catch (ConnectionLostException)
                    {
                        why = $"the connection to {seed} was lost";
                    }
                    catch (TimeoutException)
                    {
                        why = $"{seed} did not answer";
                    }
                }
            }
            await Task.Delay(RetryBackoff * 10, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The name of the seed's cluster, asked before the join registers anything (<see cref="NodeOptions.ClaimName"/>).
    /// Errors as the join's: a wrong secret is AuthenticationFailed, a seed that does not answer EndpointUnreachable.
    /// </summary>
    private static async Task<string> SeedClusterNameAsync(NodeOptions options, CancellationToken ct)
    {
        string seed = options.Join!;
        var deadline = Stopwatch.GetTimestamp() + (long)(options.JoinTimeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            string why;
            try
            {
                await using var connection = await ClientConnection.ConnectAsync(seed, options.Security, Guid.Empty, PeerClients.ConnectTimeout, ct).ConfigureAwait(false);
                var left = Remaining(deadline);
                var response = await connection.SendAsync(id => new StatusRequest(id), left > TimeSpan.Zero ? left : TimeSpan.FromMilliseconds(1), new SentFlag<bool>(false), ct).ConfigureAwait(false);
                if (response is StatusResponse status) return status.Status.Name;
                why = ((ErrorResponse)response).Error.Message;
            }
            catch (AuthenticationFailedException e)
            {
                throw new AuthenticationFailedException($"Join refused: the node at {seed} and this node do not share the cluster secret.") { Target = e.Target ?? seed };
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ProtocolException)
            {
                throw new EndpointUnreachableException($"Join refused: the seed node {seed} did not answer ({e.Message}).") { Target = seed };
            }
            catch (Exception e) when (e is ConnectionLostException or TimeoutException || (e is OperationCanceledException && !ct.IsCancellationRequested))
            {
                why = e.Message; // a loaded seed, slow to finish the handshake or to answer: ask again until the join's deadline (as the join does)
            }
            if (Remaining(deadline) <= TimeSpan.Zero)
                throw new EndpointUnreachableException($"Could not join through {seed} within {options.JoinTimeout.TotalSeconds:0.#} s: it did not say which cluster it belongs to ({why}).") { Target = seed };
            await Task.Delay(RetryBackoff * 10, ct).ConfigureAwait(false);
        }
    }

    /// <summary>A restart with -Join: refuses a folder that holds a node of another cluster than the seed's (an unreachable seed is no reason not to restart).</summary>
    private static async Task CheckSeedClusterAsync(string seed, Security.TransportSecurity security, NodeIdentity identity, string path, CancellationToken ct)
    {
        Guid seedCluster;
        try
        {
            await using var connection = await ClientConnection.ConnectAsync(seed, security, Guid.Empty, PeerClients.ConnectTimeout, ct).ConfigureAwait(false);
            seedCluster = connection.ClusterId;
        }
        catch (AuthenticationFailedException)
        {
            seedCluster = Guid.Empty; // the seed's cluster has another key: another cluster, or another secret
            throw new NodePathInUseException($"'{path}' holds node {identity.NodeId} of cluster {identity.ClusterId}, and the seed {seed} does not accept this secret for it.") { Target = path };
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ProtocolException
            || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            return;
        }
        if (seedCluster != identity.ClusterId)
            throw new NodePathInUseException($"'{path}' holds node {identity.NodeId} of cluster {identity.ClusterId}, but {seed} belongs to cluster {seedCluster}. Give another -Path to join that cluster.") { Target = path };
    }

    /// <summary>
    /// Waits until this node holds its place in the metadata group, as its own replica of the group sees it: a voter when
    /// the metadata makes it one of the lowest five voting ids, a learner otherwise (<see cref="ClusterMetadata.MetadataMembership"/>).
    /// A node that just joined gets that place from the metadata leader's control loop, one membership change at a time;
    /// until then stopping another node can cost the metadata group its quorum. Start-ReplicationNode waits for this, as
    /// New-ReplicationCluster waits for the whole group. Null once it holds its place; what it lacks when
    /// <paramref name="timeout"/> passed first (the node runs on, and the control loop keeps at it).
    /// </summary>
    public async Task<string?> WaitForMetadataPlaceAsync(TimeSpan timeout, CancellationToken ct)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            string? lacking = MetadataPlaceLacking();
            if (lacking is null || Remaining(deadline) <= TimeSpan.Zero || !IsRunning) return lacking;
            await Task.Delay(RetryBackoff, ct).ConfigureAwait(false);
        }
    }

    private string? MetadataPlaceLacking()
    {
        if (!_metadata.Nodes.TryGetValue(NodeId, out var entry)) return $"node {NodeId} has not yet applied its own registration";
        if (entry.Rebuilding) return null; // in neither role until its rebuild ends
        if (!_host.Status.TryGetValue(ClusterMetadata.MetadataGroup, out var st)) return $"node {NodeId} does not host the metadata group yet";
        bool voter = _metadata.MetadataMembership().Voters.Contains(NodeId);
        if (voter ? st.Voters.Contains(NodeId) : st.Learners.Contains(NodeId)) return null;
        return $"node {NodeId} is not yet a {(voter ? "voter" : "learner")} of the metadata group (voters [{string.Join(",", st.Voters.Order())}], "
            + $"learners [{string.Join(",", st.Learners.Order())}])";
    }

    /// <summary>Served for a Join request (from a new node, or forwarded by another node): routed to the metadata leader.</summary>
    public Task<(int NodeId, Guid ClusterId, string Metadata)> JoinAsync(string endpoint, Guid token, NodeRole role, string? zone, CancellationToken cancellationToken)
    {
        ThrowIfStopped();
        try { ClientConnection.ParseEndpoint(endpoint); }
        catch (FormatException e) { throw new ClusterOptionsException(InvalidEndpoint, e.Message) { Target = endpoint }; }
        zone = string.IsNullOrEmpty(zone) ? null : zone;
        var deadline = Stopwatch.GetTimestamp() + (long)(JoinServeTimeout.TotalSeconds * Stopwatch.Frequency);
        return RouteAsync(ClusterMetadata.MetadataGroup, deadline, idempotent: true,
            local: remaining => RegisterNodeAsync(endpoint, token, role, zone, remaining, cancellationToken),
            remote: async (target, remaining) =>
            {
                var response = await CallPeerAsync(target, id => new ForwardedRequest(id, new JoinRequest(id, endpoint, token, role, zone)), remaining, cancellationToken).ConfigureAwait(false);
                var joined = (JoinResponse)response;
                return (joined.NodeId, joined.ClusterId, joined.Metadata);
            },
            why => new QuorumUnavailableException(ClusterMetadata.MetadataGroup, JoinServeTimeout, $"the metadata group could not register the node: {why}"),
            cancellationToken);
    }

    private static readonly TimeSpan JoinServeTimeout = TimeSpan.FromSeconds(10);

    /// <summary>On the metadata leader: registers (or finds) the node of <paramref name="token"/>; a new one with <paramref name="role"/>
    /// and <paramref name="zone"/> (a registered one keeps its own: those change through SetNodeRoleAsync).</summary>
    private async Task<(int NodeId, Guid ClusterId, string Metadata)> RegisterNodeAsync(string endpoint, Guid token, NodeRole role, string? zone, TimeSpan timeout, CancellationToken ct)
    {
        await _joinGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            const int meta = ClusterMetadata.MetadataGroup;
            await _host.ConfirmReadAsync(meta, lease: false).WaitAsync(timeout, ct).ConfigureAwait(false);
            var metadata = ClusterMetadata.Read(_host.Store);
            if (metadata.Cluster is null) throw new Cluster.RetryableException("the cluster metadata is not written yet");
            var existing = metadata.Nodes.FirstOrDefault(n => n.Value.Token == token);
            int nodeId = existing.Key;
            if (nodeId != 0)
            {
                if (existing.Value.Endpoint != endpoint)
                {
                    await ProposeMetadataAsync(new[] { PutNode(nodeId, existing.Value with { Endpoint = endpoint }, expectedVersion: null) }, timeout, ct).ConfigureAwait(false);
                    Log($"node {nodeId} now listens on {endpoint}");
                }
            }
            else
            {
                nodeId = metadata.Nodes.Keys.DefaultIfEmpty(0).Max() + 1;
                // A node id is the low bits of its replicas' member ids (ReplicaIds).
                if (nodeId > Transport.ReplicaIds.MaxNode)
                    throw new ClusterOptionsException(ClusterOptionsException.Invalid, $"Node ids run out at {Transport.ReplicaIds.MaxNode}: no node can join.");
                var entry = new NodeEntry(endpoint, token) { Learner = role == NodeRole.Learner, Zone = zone };
                // The id may have been a node's that left (ids are the highest registered + 1), whose replicas a member that
                // missed the changes may still count: whatever the new node hosts is a new member (ReplicaIds), so its ids
                // start past any that node had — in every shard, as a learner-only node follows every shard.
                var ops = new List<KvOp> { PutNode(nodeId, entry, expectedVersion: 0) };
                foreach (var range in metadata.MapOr(ShardCount).Ranges)
                    if (metadata.NewReplicaIds(range.Shard, new[] { nodeId }) is { } ids) ops.Add(ids);
                var results = await ProposeMetadataAsync(ops, timeout, ct).ConfigureAwait(false);
                if (!results[0].Applied) throw new Cluster.RetryableException($"node id {nodeId} was taken meanwhile");
                Log($"node {nodeId} joined from {endpoint}" + (entry.Learner ? " as a learner" : "") + (zone is null ? "" : $" in zone {zone}"));
            }
            RefreshMetadata(force: true);
            return (nodeId, Id, ClusterMetadata.Read(_host.Store).ToJson());
        }
        finally
        {
            _joinGate.Release();
        }
    }

    private static KvOp PutNode(int id, NodeEntry entry, long? expectedVersion) =>
        new(KvOpType.Put, ClusterMetadata.NodeKey(id), System.Text.Json.JsonSerializer.Serialize(entry, ClusterMetadata.Json), expectedVersion);

    /// <summary>Proposes one command to the metadata group, which this node must lead; completes once applied here.</summary>
    private async Task<IReadOnlyList<KvOpResult>> ProposeMetadataAsync(IReadOnlyList<KvOp> ops, TimeSpan timeout, CancellationToken ct)
    {
        var outcomes = await _host.ProposeAsync(ClusterMetadata.MetadataGroup, new[] { KvCommand.Encode(ops) }, WriteConcern.Majority)
            .WaitAsync(timeout, ct).ConfigureAwait(false);
        var outcome = outcomes[0];
        if (outcome.Lost || outcome.Results is null) throw new Cluster.RetryableException("the metadata entry was lost in a leader change");
        return outcome.Results;
    }
}
