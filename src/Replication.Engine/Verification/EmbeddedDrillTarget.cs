using Replication.Engine.Cluster;
using Replication.Engine.Raft;
using Replication.Engine.Security;

namespace Replication.Engine.Verification;

/// <summary>
/// The nodes of an embedded cluster of this process, hurt through their internal hooks: a kill is
/// Stop-ReplicationNode -Kill (the node abandons its work between two steps, as in a crash) and a restart from its
/// folder; a pause holds the node's loop (NodeHost.Freeze: its clients' requests and its peers' messages queue up
/// unanswered); a partition drops the node's Raft messages to and from every other node at both ends
/// (TcpTransport.CutOff); a slow disk delays every log save (SlowDiskStorage). Thread-safe enough for the drill,
/// which injects one fault at a time.
/// </summary>
internal sealed class EmbeddedDrillTarget(EmbeddedCluster cluster, string description, Func<ValueTask>? dispose) : IDrillTarget
{
    private readonly HashSet<int> _killed = new();
    private bool _mutant;

    public string ClusterName => cluster.Name;
    public string Description => description;
    public IReadOnlyList<int> NodeIds => cluster.NodeIds;
    public int ShardCount => cluster.ShardCount;
    public DrillFault Supported => DrillFault.All;
    public IReadOnlyList<string> Endpoints => cluster.Endpoints;
    public TransportSecurity Security => cluster.ClientSecurity;

    public Task<int> LeaderOfAsync(int shard, CancellationToken cancellationToken)
    {
        // From the nodes' own published status, in this process: no request that a paused node could hold up.
        int leader = 0;
        long term = -1;
        foreach (int id in NodeIds)
            if (cluster.Node(id)?.Host.Status.TryGetValue(shard, out var st) == true && st.Role == RaftRole.Leader && st.Term > term)
            {
                leader = id;
                term = st.Term;
            }
        return Task.FromResult(leader);
    }

    public async Task InjectAsync(DrillFault kind, int node, TimeSpan slowDelay, CancellationToken cancellationToken)
    {
        switch (kind)
        {
            case DrillFault.Kill:
                _killed.Add(node);
                await cluster.StopNodeAsync(node, kill: true, cancellationToken).ConfigureAwait(false);
                break;
            case DrillFault.Pause:
                Host(node)?.Freeze();
                break;
            case DrillFault.Partition:
                Host(node)?.CutOff(NodeIds.Where(n => n != node));
                foreach (int other in NodeIds.Where(n => n != node)) Host(other)?.CutOff(new[] { node });
                break;
            case DrillFault.SlowDisk:
                if (Host(node) is { } host) host.SaveDelay = slowDelay;
                break;
        }
    }

    public async Task HealAsync(DrillFault kind, int node, CancellationToken cancellationToken)
    {
        switch (kind)
        {
            case DrillFault.Kill:
                await cluster.StartNodeAsync(node, cancellationToken).ConfigureAwait(false);
                _killed.Remove(node);
                SetMutant(_mutant); // a restarted node is a new host
                break;
            case DrillFault.Pause:
                Host(node)?.Thaw();
                break;
            case DrillFault.Partition:
                foreach (int id in NodeIds) Host(id)?.CutOff(Array.Empty<int>());
                break;
            case DrillFault.SlowDisk:
                if (Host(node) is { } host) host.SaveDelay = TimeSpan.Zero;
                break;
        }
    }

    public async Task HealAllAsync()
    {
        foreach (int id in NodeIds)
        {
            if (Host(id) is not { } host) continue;
            host.Thaw();
            host.CutOff(Array.Empty<int>());
            host.SaveDelay = TimeSpan.Zero;
        }
        foreach (int id in _killed.ToArray())
        {
            try
            {
                using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                await cluster.StartNodeAsync(id, bound.Token).ConfigureAwait(false);
                _killed.Remove(id);
            }
            catch (Exception e) when (e is ReplicationException or OperationCanceledException or IOException)
            {
                // Reported by the status the caller sees next; healing the rest matters more.
            }
        }
        SetMutant(false);
    }

    public async Task WaitForLeadersAsync(TimeSpan bound, CancellationToken cancellationToken) =>
        await cluster.WaitForLeadersAsync(null, bound, cancellationToken).ConfigureAwait(false);

    public Task SetMutantAsync(bool on, CancellationToken cancellationToken)
    {
        SetMutant(on);
        return Task.CompletedTask;
    }

    private void SetMutant(bool on)
    {
        _mutant = on;
        foreach (int id in NodeIds)
            if (Host(id) is { } host) host.MutantLocalReads = on;
    }

    private NodeHost? Host(int id) => cluster.Node(id)?.Host;

    public ValueTask DisposeAsync() => dispose?.Invoke() ?? ValueTask.CompletedTask;
}
