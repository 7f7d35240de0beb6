using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// Fault-injection hooks for the fault drill (Verification/FaultDrill.cs) and the engine tests: freezing the loop (what
/// SIGSTOP does to a node process: time passes, messages queue up, nothing is handled), a slow disk, cutting the node's
/// Raft traffic off from chosen peers, and one deliberately broken behaviour (a "mutant") that proves the drill can
/// fail. Internal: nothing in the product sets them except the drill. Thread-safe.
/// </summary>
internal sealed partial class NodeHost
{
    private readonly ManualResetEventSlim _thawed = new(initialState: true);
    private SlowDiskStorage? _slowDisk;

    /// <summary>Freezes the loop at the start of its next iteration until <see cref="Thaw"/> (or a stop). Idempotent.</summary>
    internal void Freeze() => _thawed.Reset();

    /// <summary>Lets a frozen loop go on; it then handles what queued up meanwhile. Idempotent.</summary>
    internal void Thaw() => _thawed.Set();

    /// <summary>Delay added before every log save (a slow disk); zero = none.</summary>
    internal TimeSpan SaveDelay
    {
        get => _slowDisk?.Delay ?? TimeSpan.Zero;
        set
        {
            if (_slowDisk is { } slow) slow.Delay = value;
        }
    }

    /// <summary>Drops every Raft message to and from <paramref name="peers"/> at this node (empty: none); see <see cref="Transport.TcpTransport.CutOff"/>.</summary>
    internal void CutOff(IEnumerable<int> peers) => _transport?.CutOff(peers);

    /// <summary>
    /// MUTANT, for the drill's own tests only: linearizable reads are served from this node's local replica, without
    /// asking the shard's leader (ClusterNode.Routing.cs). Stale after any write the replica has not applied yet.
    /// </summary>
    internal volatile bool MutantLocalReads;

    /// <summary>Blocks the loop thread while frozen; returns at once when not, and as soon as the node stops.</summary>
    private void WaitWhileFrozen()
    {
        while (!_stopping && !_thawed.Wait(TimeSpan.FromMilliseconds(100))) { }
    }
}
