namespace Replication.Engine.Ring;

/// <summary>
/// A node's state as the ring, the move planner and the leader balancer see it. Values are explicit
/// and append-only (they are stored in the replicated metadata).
/// <list type="table">
/// <item><term>state</term><description>receives replicas / counts as live for quorum / may lead</description></item>
/// <item><term>Running</term><description>yes / yes / yes</description></item>
/// <item><term>Draining</term><description>no (its replicas move away) / yes / no</description></item>
/// <item><term>Removed</term><description>no / no / no</description></item>
/// <item><term>Down</term><description>keeps its place (nothing new is copied to it) / no / no</description></item>
/// <item><term>Suspended</term><description>keeps its place (nothing new is copied to it) / yes / no</description></item>
/// </list>
/// A Down node keeps its place in the ring so a restart does not cost a full re-replication; the
/// caller decides when a down node is gone for good (after a timeout, as CockroachDB's
/// time_until_store_dead) and marks it Removed or Draining, which moves its replicas away.
/// </summary>
public enum RingNodeState : long
{
    Running = 0,
    Draining = 1,
    Removed = 2,
    Down = 3,
    Suspended = 4,
}
