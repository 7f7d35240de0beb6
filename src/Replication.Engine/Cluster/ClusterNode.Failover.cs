using System.Diagnostics;
using Replication.Engine.Raft;

namespace Replication.Engine.Cluster;

/// <summary>
/// Planned switchover (Invoke-ReplicationFailover): any node coordinates; the shard's leader chooses the target when
/// none is given (shard.transfertarget) and then carries out the transfer (shard.transfer). The target is fixed before
/// the transfer is asked for, so a request sent again after a lost answer finds the target leading and moves nothing
/// more. Writes meanwhile are refused by the transferring core (no proposals during a transfer) as retryable, so the
/// router retries them until the new leader takes them: they wait, they do not fail.
/// </summary>
public sealed partial class ClusterNode
{
    /// <summary>How long the leader lets a target catch up before asking it to take over anyway (Raft then finishes the catch-up).</summary>
    private static readonly TimeSpan CatchUpWait = TimeSpan.FromSeconds(2);

    /// <summary>ErrorId: the switchover target is not a running voter of the shard.</summary>
    public const string FailoverTargetInvalid = "FailoverTargetInvalid";
    /// <summary>ErrorId: no other voter of the shard is running to take over.</summary>
    public const string NoFailoverTarget = "NoFailoverTarget";

    /// <summary>Coordinator (any node): fixes the target, then has the shard's leader transfer to it.</summary>
    private async Task<ReplicationFailover> FailoverAsync(FailoverArgs args, CancellationToken ct)
    {
        var timeout = TimeSpan.FromMilliseconds(args.TimeoutMs);
        long deadline = Deadline(timeout);
        if (!ShardIds.Contains(args.Shard)) throw new ShardNotFoundException(args.Shard) { Target = args.Shard };
        if (args.Target is int given && !_metadata.Nodes.ContainsKey(given)) throw new NodeNotFoundException(given) { Target = given };
        Exception TimedOut(string why) => new QuorumUnavailableException(args.Shard, timeout, why) { Target = args.Shard };
        var started = Stopwatch.StartNew();
        // Asked of the shard's leader even when the target is given: it checks the target, and its answer says who led
        // before the switchover (see below).
        var chosen = await RouteAsync(args.Shard, deadline, idempotent: true,
            local: _ => TransferTargetAsync(args.Shard, args.Target, ct),
            remote: async (node, remaining) => (await CallAdminAsync<TransferTargetAnswer>(node, AdminOps.ShardTransferTarget, args, remaining + NetworkMargin, ct).ConfigureAwait(false)).Answer,
            TimedOut, ct).ConfigureAwait(false);
        var fixedArgs = args with { Target = chosen.Target };
        var result = await RouteAsync(args.Shard, deadline, idempotent: true,
            local: remaining => TransferHereAsync(fixedArgs with { TimeoutMs = (long)remaining.TotalMilliseconds }, ct),
            remote: async (node, remaining) => (await CallAdminAsync<ReplicationFailover>(node, AdminOps.ShardTransfer,
                fixedArgs with { TimeoutMs = (long)remaining.TotalMilliseconds }, remaining + NetworkMargin, ct).ConfigureAwait(false)).Answer,
            TimedOut, ct).ConfigureAwait(false);
        // The switchover moves the shard's leader, and the router rides through a leader change: it may give up waiting on
        // the old leader's answer and ask the new one, which finds itself leading and "moves nothing". The move was this
        // request's (the leader that chose the target was another node): report it as made, timed by this coordinator.
        // (Bug fixed: Invoke-ReplicationFailover answered "already leads shard 0: nothing moved" while its event said the
        // leadership moved from node 2 to node 1.)
        if (result.OldLeader == result.NewLeader && chosen.Leader != result.NewLeader)
            result = result with
            {
                OldLeader = chosen.Leader, Duration = started.Elapsed,
                Detail = $"Planned switchover of shard {args.Shard}: leadership moved from node {chosen.Leader} to node {result.NewLeader} (term {result.Term}, "
                    + $"{started.Elapsed.TotalMilliseconds:0} ms for the whole request); nothing acknowledged was lost.",
            };
        return result;
    }

    /// <summary>
    /// <see cref="TransferTarget"/>, after asking again each voter it would judge on that this node has no fresh report of
    /// (one poll, <see cref="PollTimeout"/>): the voter may have started a moment ago, or one poll may have failed on a
    /// loaded machine. Before, a switchover asked right after a cluster formed could be refused with "Node 2 is not
    /// running" while node 2 ran (seen in a full suite run).
    /// </summary>
    private async Task<TransferTargetAnswer> TransferTargetAsync(int shard, int? wanted, CancellationToken ct)
    {
        var st = LeaderStatus(shard);
        var judged = wanted is int w ? (w == NodeId || !st.Voters.Contains(w) ? Array.Empty<int>() : new[] { w }) : st.Voters.Where(v => v != NodeId);
        var unsure = judged.Where(v => !PeerIsRunning(v)).ToArray();
        if (unsure.Length > 0) await Task.WhenAll(unsure.Select(v => PollPeerAsync(v, ct))).ConfigureAwait(false);
        return TransferTarget(shard, wanted);
    }

    /// <summary>On the shard's leader: the target a switchover goes to — <paramref name="wanted"/> checked, or the running,
    /// not suspended voter whose log is furthest along.</summary>
    private TransferTargetAnswer TransferTarget(int shard, int? wanted)
    {
        var st = LeaderStatus(shard);
        if (wanted is int w)
        {
            if (w == NodeId) return new TransferTargetAnswer(NodeId, w);
            if (!st.Voters.Contains(w))
                throw new RemoteOperationException(FailoverTargetInvalid, ReplicationErrorKind.InvalidArgument,
                    $"Node {w} is not a voter of shard {shard} (voters: {string.Join(",", st.Voters)}); leadership can move only to a voter.") { Target = w };
            if (!PeerIsRunning(w))
                throw new RemoteOperationException(FailoverTargetInvalid, ReplicationErrorKind.Unavailable,
                    $"Node {w} is not running (or this node cannot reach it); leadership of shard {shard} can move only to a running voter.") { Target = w };
            return new TransferTargetAnswer(NodeId, w);
        }
        int best = st.Voters.Where(v => v != NodeId && PeerIsRunning(v) && RegistryEntry(v) is not { Suspended: true })
            .OrderByDescending(v => st.MatchIndexes.TryGetValue(v, out long m) ? m : 0).ThenBy(v => v).FirstOrDefault();
        if (best == 0)
            throw new RemoteOperationException(NoFailoverTarget, ReplicationErrorKind.Unavailable,
                $"Shard {shard} has no other running voter that is not suspended to take over from node {NodeId}.") { Target = shard };
        return new TransferTargetAnswer(NodeId, best);
    }

    /// <summary>This node's status of <paramref name="shard"/> when it leads it; retryable with a hint otherwise.</summary>
    private GroupStatus LeaderStatus(int shard)
    {
        if (!_host.Status.TryGetValue(shard, out var st) || st.Role != RaftRole.Leader)
            throw new RetryableException($"node {NodeId} is not the leader of shard {shard}", st?.Leader ?? 0);
        return st;
    }

    /// <summary>
    /// On the shard's leader: lets the target catch up (up to <see cref="CatchUpWait"/>, so the transfer's own window,
    /// in which the core takes no proposals, stays short), asks the core to transfer, and waits until this node sees
    /// the target leading. A transfer the core gave up on (not done within an election timeout) is asked for again.
    /// </summary>
    private async Task<ReplicationFailover> TransferHereAsync(FailoverArgs args, CancellationToken ct)
    {
        var timeout = TimeSpan.FromMilliseconds(args.TimeoutMs);
        long deadline = Deadline(timeout);
        int shard = args.Shard;
        int target = (await TransferTargetAsync(shard, args.Target, ct).ConfigureAwait(false)).Target;
        var st = LeaderStatus(shard);
        if (target == NodeId)
            return new ReplicationFailover
            {
                Shard = shard, OldLeader = NodeId, NewLeader = NodeId, Kind = FailoverKind.Planned, Duration = TimeSpan.Zero, LostEntries = 0,
                Term = st.Term, LastIndex = st.LastIndex, LastTerm = st.Term, Detail = $"Node {NodeId} already leads shard {shard}: nothing moved.",
            };
        long catchUpDeadline = Deadline(Min(CatchUpWait, timeout / 2));
        long goal = st.LastIndex;
        while (Remaining(catchUpDeadline) > TimeSpan.Zero)
        {
            st = LeaderStatus(shard);
            if (st.MatchIndexes.TryGetValue(target, out long match) && match >= goal) break;
            await _host.WaitForChangeAsync(TimeSpan.FromMilliseconds(5), ct).ConfigureAwait(false);
        }
        var watch = Stopwatch.StartNew();
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            if (_host.Status.TryGetValue(shard, out var now) && now.Role != RaftRole.Leader && now.Leader != 0)
            {
                watch.Stop();
                string detail = now.Leader == target
                    ? $"Planned switchover of shard {shard}: leadership moved from node {NodeId} to node {target} in {watch.Elapsed.TotalMilliseconds:0} ms (term {now.Term}); nothing acknowledged was lost."
                    : $"Planned switchover of shard {shard} from node {NodeId} to node {target}: node {now.Leader} was elected instead (term {now.Term}); nothing acknowledged was lost.";
                RecordEvent(ReplicationEventType.Switchover, detail, shard, now.Term);
                return new ReplicationFailover
                {
                    Shard = shard, OldLeader = NodeId, NewLeader = now.Leader, Kind = FailoverKind.Planned, Duration = watch.Elapsed, LostEntries = 0,
                    Term = now.Term, LastIndex = now.LastIndex, LastTerm = now.Term, Detail = detail,
                };
            }
            if (Remaining(deadline) <= TimeSpan.Zero)
                throw new QuorumUnavailableException(shard, timeout, $"the transfer of its leadership from node {NodeId} to node {target} did not complete") { Target = shard };
            if (now is { Role: RaftRole.Leader }) await _host.TransferLeadershipAsync(shard, target).ConfigureAwait(false); // idempotent while one is in progress
            await _host.WaitForChangeAsync(TimeSpan.FromMilliseconds(20), ct).ConfigureAwait(false);
        }
    }
}
