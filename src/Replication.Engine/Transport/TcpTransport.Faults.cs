namespace Replication.Engine.Transport;

/// <summary>
/// Fault injection for the fault drill (Verification/FaultDrill.cs): a network partition at this node's transport.
/// Messages to a cut-off peer are dropped instead of queued, and messages from it are dropped on arrival, so with
/// both sides cut off from each other no Raft message crosses in either direction (connections stay up: a partition
/// that heals delivers nothing it held back, as a lossy network would). Client connections, including the
/// forwarding of requests between nodes, are not affected. Internal; thread-safe.
/// </summary>
public sealed partial class TcpTransport
{
    private volatile int[] _cutOff = [];

    /// <summary>Drops all Raft traffic to and from <paramref name="peers"/> from now on (replacing any earlier set; empty heals).</summary>
    internal void CutOff(IEnumerable<int> peers) => _cutOff = peers.Distinct().ToArray();

    private bool IsCutOff(int peer)
    {
        var cut = _cutOff;
        return cut.Length > 0 && Array.IndexOf(cut, peer) >= 0;
    }
}
