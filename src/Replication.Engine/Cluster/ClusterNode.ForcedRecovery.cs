using System.Diagnostics;
using Replication.Engine.Raft;

namespace Replication.Engine.Cluster;

/// <summary>
/// Forced recovery after a permanent loss of quorum (Invoke-ReplicationFailover -AllowDataLoss). Any node coordinates:
/// <list type="number">
/// <item>it asks every registered node, now, for its replica of the shard (shard.replica: role, term, last index and
/// term, voters), since a decision about quorums must not rest on old status reports;</item>
/// <item>the survivor is the replica with the longest log (highest last term, then last index, then lowest node id):
/// of what survives it holds the most of what was acknowledged (Raft's own "at least as up-to-date" order, paper 5.4.1),
/// and its configuration is the latest any survivor has;</item>
/// <item>it refuses with <see cref="QuorumAvailable"/> while a majority of that configuration's voters answers: such a
/// group elects a leader by itself and loses nothing, so forcing it would only throw acknowledged writes away;</item>
/// <item>otherwise the survivor rewrites its own replica into a one-voter group (shard.forcehere; NodeHost.ForcedRecovery.cs
/// says why this is the one place that bypasses Raft's membership changes, and how it stays crash-safe), records a
/// ForcedRecovery event, and waits until it leads. Its control loop then grows the group back toward the shard's
/// placement (ClusterNode.Control.cs, <see cref="MembershipPlan"/>: learner, catch up, promote) on the placed nodes
/// that run; an operator who knows the lost nodes are gone removes them (Remove-ReplicationNode -Force), and the ring
/// places their replicas on live nodes (<see cref="PlacementPolicy"/>).</item>
/// </list>
/// Asked again after it succeeded, it is refused with QuorumAvailable: the one-voter group has its quorum.
/// Only data shards: the metadata group has no shard id here. A cluster that lost the majority of its metadata voters
/// (the lowest five node ids) cannot place, add or remove nodes; it is restored from a backup (README, "Failover runbook").
/// </summary>
public sealed partial class ClusterNode
{
    /// <summary>ErrorId: a quorum of the shard's voters answers, so it needs no forced recovery (nothing done).</summary>
    public const string QuorumAvailable = "QuorumAvailable";
    /// <summary>ErrorId: no node that answers holds a replica of the shard: nothing to recover from (nothing done).</summary>
    public const string NoSurvivor = "NoSurvivor";
    /// <summary>ErrorId: the survivor's replica changed while the recovery was decided (it led again, its configuration
    /// changed) and kept changing until the timeout; nothing was rewritten.</summary>
    public const string ForcedRecoveryConflict = "ForcedRecoveryConflict";

    /// <summary>How long a node may take to describe its replica; one that does not answer by then counts as lost.</summary>
    private static readonly TimeSpan ReplicaAskTimeout = TimeSpan.FromSeconds(2);

    /// <summary>Coordinator (any node): chooses the survivor, refuses while a quorum answers, has the survivor rewrite.</summary>
    private async Task<ReplicationFailover> ForceFailoverAsync(FailoverArgs args, CancellationToken ct)
    {
        var timeout = TimeSpan.FromMilliseconds(args.TimeoutMs);
        long deadline = Deadline(timeout);
        int shard = args.Shard;
        if (!ShardIds.Contains(shard)) throw new ShardNotFoundException(shard) { Target = shard };
        while (true)
        {
            var ids = _metadata.Nodes.Keys.Append(NodeId).Distinct().Order().ToArray();
            var answers = await Task.WhenAll(ids.Select(id => AskReplicaAsync(id, shard, ct))).ConfigureAwait(false);
            var hosting = answers.OfType<ReplicaState>().ToArray();
            var replicas = hosting.Where(r => r.Voters.Length > 0).ToArray(); // a joining replica (no configuration yet) holds nothing to recover
            if (replicas.Length == 0)
                throw new RemoteOperationException(NoSurvivor, ReplicationErrorKind.Unavailable,
                    $"No node that answers holds a replica of shard {shard} (asked nodes {string.Join(", ", ids)}): there is nothing to recover from; restore the shard from a backup.") { Target = shard };
            var survivor = replicas.OrderByDescending(r => r.LastTerm).ThenByDescending(r => r.LastIndex).ThenBy(r => r.Node).First();
            var voters = survivor.Voters;
            var answering = voters.Where(v => hosting.Any(r => r.Node == v)).ToArray();
            int quorum = voters.Length / 2 + 1;
            if (answering.Length >= quorum)
                throw new RemoteOperationException(QuorumAvailable, ReplicationErrorKind.InvalidState,
                    $"Shard {shard} has a quorum: {answering.Length} of its voters ({string.Join(", ", voters)}) answer (nodes {string.Join(", ", answering)}) and {quorum} are needed, so it elects a leader by itself and loses nothing; nothing was forced. " +
                    "Forced recovery is for a majority that is gone for good: wait for a leader (Wait-ReplicationLeader), or move leadership with Invoke-ReplicationFailover without -AllowDataLoss. " +
                    "(A shard that was just recovered by force has its quorum of one: see Get-ReplicationEvent -Type ForcedRecovery.)") { Target = shard };
            var forceArgs = new ForceHereArgs(shard, voters, (long)Remaining(deadline).TotalMilliseconds, ReportedCommit(shard, voters), survivor.Leader);
            try
            {
                var (result, _) = await CallAdminAsync<ReplicationFailover>(survivor.Node, AdminOps.ShardForceHere, forceArgs, Remaining(deadline) + NetworkMargin, ct).ConfigureAwait(false);
                return result;
            }
            catch (RemoteOperationException e) when (e.ErrorId == ForcedRecoveryConflict && Remaining(deadline) > ReplicaAskTimeout)
            {
                // The survivor still led (check-quorum steps it down within an election timeout) or its configuration
                // moved: decide again from fresh answers.
                Log($"node {NodeId}: forced recovery of shard {shard}: {e.Message}; deciding again");
                await Task.Delay(TimeSpan.FromMilliseconds(200), ct).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Node <paramref name="id"/>'s replica of <paramref name="shard"/>; null when it does not host it or does not answer.</summary>
    private async Task<ReplicaState?> AskReplicaAsync(int id, int shard, CancellationToken ct)
    {
        if (id == NodeId) return await _host.ReplicaStateAsync(shard).ConfigureAwait(false);
        try
        {
            return (await CallAdminAsync<ReplicaAnswer>(id, AdminOps.ShardReplica, new ShardArgs(shard), ReplicaAskTimeout, ct).ConfigureAwait(false)).Answer.Replica;
        }
        catch (Exception e) when (e is ReplicationException or TimeoutException or RetryableException or PeerUnreachableException
            or Client.ConnectionLostException || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            return null; // lost, stopped or unreachable: it counts as gone
        }
    }

    /// <summary>The highest commit index of <paramref name="shard"/> any voter other than this node last reported (however
    /// old the report), or 0: a lower bound of what the group had acknowledged.</summary>
    private long ReportedCommit(int shard, IReadOnlyCollection<int> voters)
    {
        long best = 0;
        foreach (var (id, view) in _peerViews)
            if (voters.Contains(id) && view.Report?.Shards.FirstOrDefault(s => s.Id == shard) is { } s && s.CommitIndex > best) best = s.CommitIndex;
        return best;
    }

    /// <summary>On the survivor: the rewrite, its event, and the wait until this node leads the one-voter group.</summary>
    private async Task<ReplicationFailover> ForceHereAsync(ForceHereArgs args, CancellationToken ct)
    {
        var timeout = TimeSpan.FromMilliseconds(args.TimeoutMs);
        long deadline = Deadline(timeout);
        int shard = args.Shard;
        var watch = Stopwatch.StartNew();
        ForcedRewrite rewrite;
        try
        {
            rewrite = await _host.ForceSoleVoterAsync(shard, args.Voters).ConfigureAwait(false);
        }
        catch (InvalidOperationException e)
        {
            throw new RemoteOperationException(ForcedRecoveryConflict, ReplicationErrorKind.Conflict,
                $"Forced recovery of shard {shard} on node {NodeId} did not start: {e.Message}.") { Target = shard };
        }
        var lost = rewrite.FormerVoters.Where(v => v != NodeId).ToArray();
        string detail = $"Forced recovery of shard {shard}: node {NodeId} is its only voter (it was one of {string.Join(", ", rewrite.FormerVoters)}), " +
            $"with its log up to index {rewrite.LastIndex} (term {rewrite.LastTerm}). Anything after index {rewrite.LastIndex} that was acknowledged by the lost majority " +
            $"(nodes {string.Join(", ", lost)}) is gone, and so is anything they committed in a term after {rewrite.LastTerm}" +
            (args.ReportedCommit > rewrite.LastIndex
                ? $": their last status reports showed commit index {args.ReportedCommit}, so at least {args.ReportedCommit - rewrite.LastIndex} committed entries are lost."
                : "; how much that was is unknown.");
        RecordEvent(ReplicationEventType.ForcedRecovery, detail, shard, rewrite.Term);
        while (true)
        {
            if (_host.Status.TryGetValue(shard, out var st) && st.Role == RaftRole.Leader)
            {
                watch.Stop();
                return new ReplicationFailover
                {
                    Shard = shard, OldLeader = args.OldLeader, NewLeader = NodeId, Kind = FailoverKind.Forced, Duration = watch.Elapsed,
                    LostEntries = null, Term = st.Term, LastIndex = st.LastIndex, LastTerm = st.Term,
                    SurvivorLastIndex = rewrite.LastIndex, SurvivorLastTerm = rewrite.LastTerm, Detail = detail,
                };
            }
            if (Remaining(deadline) <= TimeSpan.Zero)
                throw new QuorumUnavailableException(shard, timeout,
                    $"node {NodeId} was made its only voter (its log ends at index {rewrite.LastIndex}, term {rewrite.LastTerm}) but had not won its election yet; it will, see Wait-ReplicationLeader") { Target = shard };
            await _host.WaitForChangeAsync(TimeSpan.FromMilliseconds(20), ct).ConfigureAwait(false);
        }
    }
}
