using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using Replication.Engine.Client;
using Replication.Engine.Cluster;
using Replication.Engine.Raft;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// Routing: a request for a group is served here when this node leads it, else forwarded to the node
/// believed to lead it (a <see cref="ForwardedRequest"/> over this node's client connection to that
/// node). A forwarded request is served by its receiver or refused with NotLeader and a leader hint,
/// never forwarded again (so one attempt is at most one hop); the forwarding node retries against the
/// hint, then other replicas, until the caller's deadline. A write that was sent but whose answer
/// was lost is reported OutcomeUnknown, never retried; everything else that failed before being
/// served is retried. Leader guesses come from this node's own groups, the hints of refusals, the
/// peers' status reports, and finally the placement's replicas in turn.
/// <para>
/// Failover (issue 10, item 7): while a forwarded request waits on a leader, this node watches for a newer
/// leader of the group (its own replica's view, else the peers' reports). When one is known and the answer
/// has not come, a read is sent to the new leader at once; a write is reported OutcomeUnknown at once (the
/// old leader may still append and even commit it, so sending it again could apply it twice). Deadlines: the
/// leader is given the caller's remaining time less <see cref="ForwardMargin"/>, and its answer is waited for
/// only until the caller's deadline, so a forwarded request ends within its timeout plus scheduling delays.
/// </para>
/// </summary>
public sealed partial class ClusterNode
{
    private static readonly TimeSpan RetryBackoff = TimeSpan.FromMilliseconds(15);
    /// <summary>Time allowed beyond an administrative peer call's own timeout for the network (backups, consistency checks, rebuilds).</summary>
    private static readonly TimeSpan NetworkMargin = TimeSpan.FromSeconds(2);
    /// <summary>
    /// Of a forwarded request's remaining time, what is kept back for the answer to travel: the leader gets the rest as
    /// its own timeout, and the forwarding node waits for its answer until the caller's deadline (never beyond it).
    /// </summary>
    internal static readonly TimeSpan ForwardMargin = TimeSpan.FromMilliseconds(250);
    /// <summary>
    /// How long a forwarded write still waits for the old leader's answer once a newer leader is known: a deposed leader that
    /// runs learns of the newer term within a heartbeat and then settles the write (committed, or lost and safe to send
    /// again), which is a definite answer; a paused or dead one does not, and the write is then OutcomeUnknown.
    /// </summary>
    private static readonly TimeSpan DeposedLeaderGrace = TimeSpan.FromMilliseconds(200);
    /// <summary>How often a forwarded request that waits re-reads the peers' reports for a newer leader (this node's own
    /// replicas signal a change at once).</summary>
    private static readonly TimeSpan LeaderWatchPoll = TimeSpan.FromMilliseconds(50);
    private const int ScanPageSize = 500;

    private readonly ConcurrentDictionary<int, int> _leaderHints = new();

    /// <summary>ErrorId: the metadata group has no leader and a majority of its voters is down, so no membership, ring or
    /// registry change can be made until they run again (the metadata group cannot be recovered by force).</summary>
    public const string MetadataQuorumLost = "MetadataQuorumLost";
    /// <summary>
    /// How long a request for the metadata group waits while that group has no leader and most of its voters are down
    /// before it is refused with <see cref="MetadataQuorumLost"/>, instead of retrying to its timeout: long enough for a
    /// restarted voter to answer a poll again and for a slow poll on a loaded machine to pass (a poll times out after
    /// <see cref="PollTimeout"/>, one is sent every <see cref="StatusInterval"/>).
    /// </summary>
    private static readonly TimeSpan MetadataQuorumLostAfter = TimeSpan.FromSeconds(5);

    // ---- the routing loop ----

    /// <summary>
    /// Serves one request for <paramref name="group"/>: locally when this node leads it, else through
    /// its leader. <paramref name="idempotent"/>: a request whose connection broke after it was sent may
    /// be sent again (reads); otherwise that is an <see cref="RemoteOperationException.OutcomeUnknown"/>.
    /// </summary>
    private async Task<T> RouteAsync<T>(int group, long deadline, bool idempotent, Func<TimeSpan, Task<T>> local,
        Func<int, TimeSpan, Task<T>> remote, Func<string, Exception> timedOut, CancellationToken ct)
    {
        string why = "no leader is known";
        long? quorumLostSince = null;
        for (int attempt = 0; ; attempt++)
        {
            ct.ThrowIfCancellationRequested();
            ThrowIfStopped();
            var remaining = Remaining(deadline);
            if (remaining <= TimeSpan.Zero) throw timedOut(why);
            if (ForwardContext.IsForwarded) return await ServeForwardedAsync(group, remaining, idempotent, local, timedOut).ConfigureAwait(false);
            if (group == ClusterMetadata.MetadataGroup && MetadataQuorumLostReason() is { } lost)
            {
                quorumLostSince ??= Stopwatch.GetTimestamp();
                if (Stopwatch.GetElapsedTime(quorumLostSince.Value) >= MetadataQuorumLostAfter)
                    throw new RemoteOperationException(MetadataQuorumLost, ReplicationErrorKind.Unavailable, lost);
            }
            else quorumLostSince = null;
            int target = LeaderGuess(group, attempt);
            if (target == 0)
            {
                await _host.WaitForChangeAsync(RetryBackoff, ct).ConfigureAwait(false); // an election or a leader heard of ends the wait
                continue;
            }
            if (target == NodeId)
            {
                try
                {
                    return await local(remaining).ConfigureAwait(false);
                }
                catch (RetryableException e) when (e.Ambiguous && !idempotent)
                {
                    throw new RemoteOperationException(RemoteOperationException.OutcomeUnknown, ReplicationErrorKind.Unavailable,
                        $"Node {NodeId} stopped leading while the write was in its log ({e.Message}): it may or may not have been applied.");
                }
                catch (RetryableException e)
                {
                    why = e.Message;
                    NoteLeader(group, e.LeaderHint == NodeId ? 0 : e.LeaderHint);
                }
                catch (TimeoutException)
                {
                    why = $"node {NodeId} could not get an answer from a quorum";
                }
                // Refused here (a leadership transfer under way, a step-down): this node's next change of leader ends the wait,
                // so a write during a switchover goes to the new leader as soon as this node knows it, not a fixed back-off later.
                await _host.WaitForChangeAsync(RetryBackoff, ct).ConfigureAwait(false);
                continue;
            }
            // The leader gets the remaining time less the margin; its answer is waited for until about the caller's deadline.
            var budget = remaining > ForwardMargin * 2 ? remaining - ForwardMargin : remaining / 2;
            var call = remote(target, budget);
            if (!call.IsCompleted)
            {
                using var watch = CancellationTokenSource.CreateLinkedTokenSource(ct);
                var moved = LeaderMovedAsync(group, target, watch.Token);
                await Task.WhenAny(call, moved).ConfigureAwait(false);
                watch.Cancel(); // ends the watch
                if (!call.IsCompleted)
                {
                    ct.ThrowIfCancellationRequested();
                    int leader = await moved.ConfigureAwait(false);
                    // A write is not sent again; but the old leader, if it still runs, settles it (committed by the new leader,
                    // or lost) within a moment of hearing of the newer term: its answer is waited for that long.
                    if (!idempotent) await Task.WhenAny(call, Task.Delay(DeposedLeaderGrace, ct)).ConfigureAwait(false);
                    if (!call.IsCompleted)
                    {
                        // Abandoned: its own timeout ends it; its failure is of no interest any more.
                        _ = call.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
                        ct.ThrowIfCancellationRequested();
                        if (!idempotent)
                            throw new RemoteOperationException(RemoteOperationException.OutcomeUnknown, ReplicationErrorKind.Unavailable,
                                $"Node {target} stopped answering while it had the write, and node {leader} leads shard {group} now: the write may or may not "
                                + "have been applied (not sent again: it could apply twice).");
                        why = $"node {target} stopped answering and node {leader} leads now";
                        NoteLeader(group, leader);
                        continue; // at once: the new leader serves it
                    }
                }
            }
            try
            {
                return await call.ConfigureAwait(false);
            }
            catch (RemoteOperationException e) when (e.ErrorId == RemoteOperationException.NodeStopping)
            {
                why = $"node {target} is stopping";
                NoteLeader(group, 0);
            }
            catch (RemoteOperationException e) when (e.ErrorId == NotLeaderException.Id)
            {
                why = $"node {target} does not lead it";
                int hint = NotLeaderException.HintOf(e.Message);
                NoteLeader(group, hint == target ? 0 : hint);
            }
            catch (PeerUnreachableException e)
            {
                why = e.Message;
                NoteLeader(group, 0);
            }
            catch (Exception e) when (e is ConnectionLostException or TimeoutException && idempotent)
            {
                why = $"node {target} did not answer";
                NoteLeader(group, 0);
            }
            catch (ConnectionLostException)
            {
                throw new RemoteOperationException(RemoteOperationException.OutcomeUnknown, ReplicationErrorKind.Unavailable,
                    $"The connection to node {target} was lost after the write was forwarded to it: it may or may not have been applied.");
            }
            catch (TimeoutException)
            {
                throw new RemoteOperationException(RemoteOperationException.OutcomeUnknown, ReplicationErrorKind.Timeout,
                    $"Node {target} did not answer the forwarded write in time: it may or may not have been applied.");
            }
            await Task.Delay(RetryBackoff, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A forwarded request: served here if this node leads the group, else refused with a hint (never forwarded again).
    /// A write that timed out here is OutcomeUnknown (it is in this node's log and may still commit), a read that timed out
    /// is <paramref name="timedOut"/>'s error: never the ServerError an unexpected exception becomes.
    /// </summary>
    private async Task<T> ServeForwardedAsync<T>(int group, TimeSpan remaining, bool idempotent, Func<TimeSpan, Task<T>> local, Func<string, Exception> timedOut)
    {
        if (_host.Status.TryGetValue(group, out var st) && st.Role == RaftRole.Leader)
        {
            try
            {
                return await local(remaining).ConfigureAwait(false);
            }
            catch (RetryableException e) when (e.Ambiguous)
            {
                throw new RemoteOperationException(RemoteOperationException.OutcomeUnknown, ReplicationErrorKind.Unavailable,
                    $"Node {NodeId} stopped leading while the write was in its log ({e.Message}): it may or may not have been applied.");
            }
            catch (RetryableException e)
            {
                throw new NotLeaderException(group, NodeId, e.LeaderHint == NodeId ? 0 : e.LeaderHint);
            }
            catch (TimeoutException) when (!idempotent)
            {
                throw new RemoteOperationException(RemoteOperationException.OutcomeUnknown, ReplicationErrorKind.Timeout,
                    $"Node {NodeId}, leader of shard {group}, could not get the write acknowledged by a quorum in time: it may or may not have been applied.");
            }
            catch (TimeoutException)
            {
                throw timedOut($"node {NodeId}, leader of shard {group}, could not get an answer from a quorum");
            }
        }
        throw new NotLeaderException(group, NodeId, st is null || st.Leader == NodeId ? LeaderFromReports(group) : st.Leader);
    }

    /// <summary>Calls a peer and waits up to <paramref name="timeout"/> (the peer's own deadline) plus <see cref="ForwardMargin"/>.</summary>
    private Task<ClientResponse> CallPeerAsync(int node, Func<long, ClientRequest> make, TimeSpan timeout, CancellationToken ct) =>
        _peerClients.SendAsync(node, make, timeout + ForwardMargin, new SentFlag<bool>(false), ct);

    /// <summary>
    /// Completes with the node that leads <paramref name="group"/>, once this node knows one other than <paramref name="from"/>
    /// that is news since it was called: a leader of a newer term, or the first leader of the term it already knew when no
    /// leader was known then. From its own replica of the group (signalled at once), else from the peers' reports (re-read
    /// every <see cref="LeaderWatchPoll"/>). Cancelled through <paramref name="ct"/>.
    /// (Bug fixed: only a newer term counted. A node whose replica had already moved to the election's term, through a vote
    /// request, before it forwarded a write to the paused old leader, never saw that election's winner as news: the write
    /// waited out its whole timeout, 45 s in ProcessFailoverClientTests under the full suite's load.)
    /// </summary>
    private async Task<int> LeaderMovedAsync(int group, int from, CancellationToken ct)
    {
        var (sinceLeader, since) = _host.Status.TryGetValue(group, out var first) ? (first.Leader, first.Term) : LeaderAndTermFromReports(group);
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var (leader, term) = _host.Status.TryGetValue(group, out var st) ? (st.Leader, st.Term) : LeaderAndTermFromReports(group);
            if (leader != 0 && leader != from && (term > since || (sinceLeader == 0 && term == since))) return leader;
            await _host.WaitForChangeAsync(LeaderWatchPoll, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Why the metadata group cannot elect a leader, when this node's replica of it knows no leader and fewer than a
    /// majority of its voters run (this node, or peers that answered their last status poll); null otherwise.
    /// </summary>
    private string? MetadataQuorumLostReason()
    {
        if (!_host.Status.TryGetValue(ClusterMetadata.MetadataGroup, out var st) || st.Role == RaftRole.Leader || st.Leader != 0 || st.Voters.Count == 0)
            return null;
        var down = st.Voters.Where(v => !IsRunningNode(v)).Order().ToArray();
        int running = st.Voters.Count - down.Length;
        if (running >= st.Voters.Count / 2 + 1) return null;
        string nodes = down.Length == 1 ? $"node {down[0]} is" : $"nodes {string.Join(", ", down)} are";
        return $"The metadata group has no leader and cannot elect one: only {running} of its voters [{string.Join(",", st.Voters.Order())}] run "
            + $"({nodes} down, as node {NodeId} sees it), so no node can be added, removed, suspended or moved and no shard placed or split. "
            + $"Start {(down.Length == 1 ? "it" : "them")} again. If they are lost for good, the metadata group cannot be recovered by force "
            + "(Invoke-ReplicationFailover -AllowDataLoss is for data shards): restore the cluster from a backup (Restore-ReplicationCluster).";
    }

    /// <summary>The node to try for <paramref name="group"/> on this attempt; 0 when nothing is known.</summary>
    private int LeaderGuess(int group, int attempt)
    {
        if (_host.Status.TryGetValue(group, out var st))
        {
            if (st.Role == RaftRole.Leader) return NodeId;
            if (st.Leader != 0 && attempt % 4 != 3) return st.Leader;
            // This node's own replica knows no leader: an election is under way (a switchover's, a step-down's), and the
            // replica hears of the winner first-hand, which ends the caller's wait (0: wait for a change). Guessing another
            // replica meanwhile cost a refused round trip and a back-off: the old leader of a switchover forwarded its
            // waiting writes to a follower, which refused them with a stale hint, and they reached the new leader
            // 180 ms after it was elected (failover bench, traced). Every fourth attempt still asks around, as below.
            if (attempt % 4 != 3) return 0;
        }
        if (_leaderHints.TryGetValue(group, out int hint) && hint != 0 && attempt % 4 != 3) return hint;
        int reported = LeaderFromReports(group);
        if (reported != 0 && attempt % 4 != 3) return reported;
        var replicas = group == ClusterMetadata.MetadataGroup
            ? _metadata.MetadataMembership().Voters
            : _metadata.ReplicasOf(group);
        return replicas.Count == 0 ? 0 : replicas[attempt % replicas.Count];
    }

    private void NoteLeader(int group, int leader)
    {
        if (leader == 0) _leaderHints.TryRemove(group, out _);
        else _leaderHints[group] = leader;
    }

    // ---- writes ----

    /// <summary>
    /// Writes a batch: grouped by shard with the current map, each group routed to its shard's leader. Writes a shard
    /// refused because it split (WrongShard: nothing was written) are grouped again with the newer map as soon as this
    /// node's metadata has it, and sent again, until the deadline.
    /// </summary>
    public async Task<IReadOnlyList<WriteResult>> WriteAsync(IReadOnlyList<KeyWrite> writes, WriteConcern concern, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfStopped();
        var results = new WriteResult?[writes.Count];
        var deadline = Deadline(timeout);
        IEnumerable<int> pending = Enumerable.Range(0, writes.Count);
        while (true)
        {
            var map = Map;
            var byShard = WriteBatching.GroupByShard(writes, pending, map, results);
            await Task.WhenAll(byShard.Select(kv => WriteShardAsync(kv.Key, kv.Value, writes, results, concern, timeout, deadline, cancellationToken))).ConfigureAwait(false);
            var wrong = byShard.Values.SelectMany(p => p).Where(p => results[p]?.Error is WrongShardException).ToArray();
            if (wrong.Length == 0 || !await WaitForNewerMapAsync(map.Version, deadline, cancellationToken).ConfigureAwait(false)) break;
            pending = wrong;
        }
        return results!;
    }

    /// <summary>Waits (until the deadline) for this node's metadata to hold a shard map newer than <paramref name="version"/>.</summary>
    private async Task<bool> WaitForNewerMapAsync(long version, long deadline, CancellationToken ct)
    {
        while (Remaining(deadline) > TimeSpan.Zero)
        {
            RefreshMetadata(force: true);
            if (Map.Version > version) return true;
            await Task.Delay(RetryBackoff, ct).ConfigureAwait(false);
        }
        return false;
    }

    private async Task WriteShardAsync(int shard, List<int> positions, IReadOnlyList<KeyWrite> writes, WriteResult?[] results,
        WriteConcern concern, TimeSpan timeout, long deadline, CancellationToken ct)
    {
        var subset = positions.Select(p => writes[p]).ToArray();
        IReadOnlyList<WriteResult> shardResults;
        try
        {
            shardResults = await RouteAsync<IReadOnlyList<WriteResult>>(shard, deadline, idempotent: false,
                local: remaining => WriteLocalAsync(shard, subset, concern, remaining, ct),
                remote: async (target, remaining) =>
                {
                    var response = (WriteResponse)await CallPeerAsync(target, id => new ForwardedRequest(id, new WriteRequest(id, subset, concern, remaining)), remaining, ct).ConfigureAwait(false);
                    if (response.Outcomes.Count != subset.Length) throw new RemoteOperationException("ServerError", ReplicationErrorKind.Unavailable, $"Node {target} answered {response.Outcomes.Count} outcomes for {subset.Length} writes.");
                    if (response.Outcomes.FirstOrDefault(o => o.Error?.ErrorId == NotLeaderException.Id) is { Error: { } refused })
                        throw refused.ToException(); // nothing was proposed there: retried against the hint
                    return subset.Select((w, i) => FromOutcome(w, response.Outcomes[i])).ToArray();
                },
                why => new QuorumUnavailableException(shard, timeout, why),
                ct).ConfigureAwait(false);
        }
        catch (ReplicationException e) when (e is not NotLeaderException)
        {
            // A NotLeader refusal of a forwarded write stays a request-level error, so the forwarding node retries elsewhere.
            shardResults = subset.Select(w => new WriteResult(w, null, false, e)).ToArray();
        }
        for (int i = 0; i < positions.Count; i++) results[positions[i]] = shardResults[i];
    }

    private WriteResult FromOutcome(KeyWrite w, WriteOutcome o)
    {
        if (o.Error is { } error) return new WriteResult(w, null, o.Existed, error.ToException());
        var record = o.HasRecord ? new ReplicationKey(w.Key, w.Value!, o.Version, o.Shard, o.Index) { Cluster = Name } : null;
        return new WriteResult(w, record, o.Existed, null);
    }

    /// <summary>Proposes a shard's writes here (this node leads the shard); entries lost to a leader change are proposed again while it still leads.</summary>
    private async Task<IReadOnlyList<WriteResult>> WriteLocalAsync(int shard, KeyWrite[] writes, WriteConcern concern, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = Deadline(timeout);
        var results = new WriteResult?[writes.Length];
        var pending = WriteBatching.Pack(writes, Enumerable.Range(0, writes.Length));
        while (pending.Count > 0)
        {
            var remaining = Remaining(deadline);
            if (remaining <= TimeSpan.Zero) throw new TimeoutException();
            var outcomes = await _host.ProposeAsync(shard, pending.Select(c => c.Command).ToArray(), concern).WaitAsync(remaining, ct).ConfigureAwait(false);
            var lost = new List<(int[] Positions, byte[] Command)>();
            for (int j = 0; j < outcomes.Count; j++)
            {
                if (outcomes[j].Lost)
                {
                    lost.Add(pending[j]);
                    continue;
                }
                var chunk = pending[j];
                for (int k = 0; k < chunk.Positions.Length; k++)
                {
                    int pos = chunk.Positions[k];
                    results[pos] = WriteBatching.ToResult(writes[pos], shard, outcomes[j].Index, outcomes[j].Results?[k], Name);
                }
            }
            pending = lost;
        }
        return results!;
    }


    // ---- reads ----

    /// <summary>Reads one key from the shard that owns it; a shard that split meanwhile (WrongShard) sends it to the newer map's shard.</summary>
    public async Task<ReplicationKey?> GetAsync(string key, ReadConsistency consistency, TimeSpan timeout, CancellationToken cancellationToken, long? maxLag = null)
    {
        ThrowIfStopped();
        KvLimits.Validate(key, null);
        if (maxLag < 0) throw new ArgumentOutOfRangeException(nameof(maxLag), maxLag, "A lag bound counts entries: 0 or more.");
        if (consistency != ReadConsistency.Stale) maxLag = null;
        var deadline = Deadline(timeout);
        while (true)
        {
            var map = Map;
            int shard = map.ShardFor(key);
            try
            {
                if (consistency == ReadConsistency.Stale && _host.Status.ContainsKey(shard)) return ReadStale(shard, key, maxLag);
                if (_host.MutantLocalReads && _host.Status.ContainsKey(shard)) return ReadLocal(shard, key); // the mutant: NodeHost.Faults.cs
                return await RouteAsync(shard, deadline, idempotent: true,
                    local: async remaining =>
                    {
                        await ConfirmLocalAsync(shard, consistency, remaining, cancellationToken, key).ConfigureAwait(false);
                        return consistency == ReadConsistency.Stale ? ReadStale(shard, key, maxLag) : ReadLocal(shard, key);
                    },
                    remote: async (target, remaining) =>
                        ((GetResponse)await CallPeerAsync(target, id => new ForwardedRequest(id, new GetRequest(id, key, consistency, remaining, maxLag)), remaining, cancellationToken).ConfigureAwait(false)).Key,
                    why => new QuorumUnavailableException(shard, timeout, why) { Target = key },
                    cancellationToken).ConfigureAwait(false);
            }
            catch (WrongShardException) when (!ForwardContext.IsForwarded)
            {
                // the newer map routes it to the shard that owns it now
                if (!await WaitForNewerMapAsync(map.Version, deadline, cancellationToken).ConfigureAwait(false)) throw;
            }
        }
    }

    /// <summary>The key as this replica's state machine holds it; WrongShard when the shard no longer owns it (split).</summary>
    private ReplicationKey? ReadLocal(int shard, string key)
    {
        var stored = _host.Store.Get(shard, key);
        if (!_host.Store.Owns(shard, key))
            throw new WrongShardException(shard, $"Shard {shard} split: '{key}' belongs to another shard now.") { Target = key };
        return stored is null ? null : new ReplicationKey(stored.Key, stored.Value, stored.Version, shard, stored.ModifiedIndex) { Cluster = Name };
    }

    /// <summary>
    /// A Stale read from this node's replica, marked with this node and the replica's lag (ClusterNode.Status.cs ShardLag;
    /// null: not known); refused with ReplicaTooStale when it lags more than <paramref name="maxLag"/> entries, or when a
    /// bound is asked and the lag is not known (nothing says the copy holds what the bound promises).
    /// </summary>
    private ReplicationKey? ReadStale(int shard, string key, long? maxLag)
    {
        long? lag = _host.Status.TryGetValue(shard, out var st) ? ShardLag(st) : null;
        if (maxLag is { } bound && !(lag <= bound))
            throw new ReplicaTooStaleException(NodeId, shard, lag, bound) { Target = key };
        return ReadLocal(shard, key) is { } found ? found with { ReadFrom = NodeId, LagEntries = lag } : null;
    }

    /// <summary>Waits until this node (leader of <paramref name="shard"/>) can serve a read at the consistency asked (Stale: at once).
    /// A read of one <paramref name="key"/> is served even while this node's full state.db holds back entries that do not
    /// touch the key (NodeHost.Requests.cs, UnaffectedWhileFull).</summary>
    private async Task ConfirmLocalAsync(int shard, ReadConsistency consistency, TimeSpan timeout, CancellationToken ct, string? key = null)
    {
        if (consistency == ReadConsistency.Stale) return;
        await _host.ConfirmReadAsync(shard, consistency == ReadConsistency.Lease, key is null ? null : e => KvCommand.MayChange(e.Data, key))
            .WaitAsync(timeout, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// One page of shard <paramref name="shard"/>'s keys in the hash range [<paramref name="rangeStart"/>, <paramref name="rangeLast"/>]
    /// (the range the caller's shard map gives it), after <paramref name="after"/>. WrongShard when the shard owns less than
    /// that range now (it split and the caller's map is older).
    /// </summary>
    public async Task<(IReadOnlyList<ReplicationKey> Keys, bool More)> ScanShardAsync(int shard, ulong rangeStart, ulong rangeLast, string prefix, string? after, int limit,
        ReadConsistency consistency, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfStopped();
        if (consistency == ReadConsistency.Stale && _host.Status.ContainsKey(shard)) return ScanLocal(shard, rangeStart, rangeLast, prefix, after, limit, stale: true);
        return await RouteAsync(shard, Deadline(timeout), idempotent: true,
            local: async remaining =>
            {
                await ConfirmLocalAsync(shard, consistency, remaining, cancellationToken).ConfigureAwait(false);
                return ScanLocal(shard, rangeStart, rangeLast, prefix, after, limit, consistency == ReadConsistency.Stale);
            },
            remote: async (target, remaining) =>
            {
                var page = (ScanPageResponse)await CallPeerAsync(target,
                    id => new ForwardedRequest(id, new ShardScanRequest(id, shard, rangeStart, rangeLast, prefix, after, limit, consistency, remaining)), remaining, cancellationToken).ConfigureAwait(false);
                return (page.Keys, page.More);
            },
            why => new QuorumUnavailableException(shard, timeout, why) { Target = shard },
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A page of the local replica's index scan: the keys after <paramref name="after"/>, found by an index seek, that hash
    /// into the range asked (a replica that has not split the shard yet still holds the rows of both halves). Stateless, so
    /// any replica can serve the next page.
    /// </summary>
    /// <remarks>A <paramref name="stale"/> page marks its keys with this node and the replica's lag when the page was read.</remarks>
    private (IReadOnlyList<ReplicationKey> Keys, bool More) ScanLocal(int shard, ulong rangeStart, ulong rangeLast, string prefix, string? after, int limit, bool stale)
    {
        int? readFrom = stale ? NodeId : null;
        long? lag = stale && _host.Status.TryGetValue(shard, out var st) ? ShardLag(st) : null;
        var own = _host.Store.RangeOf(shard);
        if (own is { } o && (rangeStart < o.Start || rangeLast > o.Last))
            throw new WrongShardException(shard, $"Shard {shard} split: it owns less than the range asked.") { Target = shard };
        bool filter = own is not { } exact || exact.Start != rangeStart || exact.Last != rangeLast;
        var keys = new List<ReplicationKey>(Math.Min(limit, 1024));
        bool more = false;
        foreach (var k in _host.Store.ScanAfter(shard, prefix, after))
        {
            if (filter)
            {
                ulong h = Ring.KeyHash.Of(k.Key);
                if (h < rangeStart || h > rangeLast) continue;
            }
            if (keys.Count == limit)
            {
                more = true;
                break;
            }
            keys.Add(new ReplicationKey(k.Key, k.Value, k.Version, shard, k.ModifiedIndex) { Cluster = Name, ReadFrom = readFrom, LagEntries = lag });
        }
        return (keys, more);
    }

    /// <summary>
    /// Every key with the prefix, merged across shards in key order. Each shard's first page is fetched
    /// (and, for Linearizable/Lease, confirmed by its leader) before the first key is returned, so the scan
    /// reflects every write acknowledged before it began; later pages are read as they are needed. A shard that
    /// split before the first key was returned makes the scan start again with the newer map; a split after that
    /// ends the scan with WrongShard (run it again).
    /// </summary>
    public async IAsyncEnumerable<ReplicationKey> ScanAsync(string prefix, ReadConsistency consistency, TimeSpan timeout,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ThrowIfStopped();
        if (System.Text.Encoding.UTF8.GetByteCount(prefix) > KvLimits.MaxKeyBytes)
            throw new InvalidKeyException(InvalidKeyException.InvalidPrefix, $"A prefix longer than {KvLimits.MaxKeyBytes} UTF-8 bytes matches no key.") { Target = prefix };
        var deadline = Deadline(timeout);
        var cursors = new List<IAsyncEnumerator<ReplicationKey>>();
        var queue = new PriorityQueue<IAsyncEnumerator<ReplicationKey>, string>(Comparer<string>.Create(KvStore.CompareKeys));
        try
        {
            while (true)
            {
                var map = Map;
                try
                {
                    foreach (var range in map.Ranges)
                    {
                        var cursor = ShardKeysAsync(range, prefix, consistency, timeout, cancellationToken).GetAsyncEnumerator(cancellationToken);
                        cursors.Add(cursor);
                        if (await cursor.MoveNextAsync().ConfigureAwait(false)) queue.Enqueue(cursor, cursor.Current.Key);
                    }
                    break;
                }
                catch (WrongShardException) when (!ForwardContext.IsForwarded)
                {
                    if (!await WaitForNewerMapAsync(map.Version, deadline, cancellationToken).ConfigureAwait(false)) throw;
                    foreach (var c in cursors) await c.DisposeAsync().ConfigureAwait(false);
                    cursors.Clear();
                    queue.Clear();
                }
            }
            while (queue.TryDequeue(out var cursor, out _))
            {
                yield return cursor.Current;
                if (await cursor.MoveNextAsync().ConfigureAwait(false)) queue.Enqueue(cursor, cursor.Current.Key);
            }
        }
        finally
        {
            foreach (var c in cursors) await c.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async IAsyncEnumerable<ReplicationKey> ShardKeysAsync(Ring.ShardRange range, string prefix, ReadConsistency consistency, TimeSpan timeout,
        [EnumeratorCancellation] CancellationToken ct)
    {
        string? after = null;
        while (true)
        {
            var (keys, more) = await ScanShardAsync(range.Shard, range.Start, range.Last, prefix, after, ScanPageSize, consistency, timeout, ct).ConfigureAwait(false);
            foreach (var k in keys) yield return k;
            if (!more || keys.Count == 0) yield break;
            after = keys[^1].Key;
        }
    }

    // ---- leaders and nodes ----

    public async Task<IReadOnlyList<ReplicationShard>> WaitForLeadersAsync(int? shard, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfStopped();
        // A forwarded request may come from a node whose map is newer (the shard was just split off): it is served as a
        // question to this node as a leader, which refuses it as not the leader, and the asker tries again.
        if (shard is int s0 && !Map.Contains(s0) && !ForwardContext.IsForwarded) throw new ShardNotFoundException(s0) { Target = s0 };
        var shards = shard is int one ? new[] { one } : ShardIds.ToArray();
        var deadline = Deadline(timeout);
        // The shards are returned as one view in which each shows its leader: a leadership that moves after its shard was
        // confirmed (a balancing handover) shows no leader for a moment, and the caller was promised leaders (bug fixed: a
        // Pester run got a shard with leader 0 from Wait-ReplicationLeader). Such a shard is confirmed again.
        var waiting = shards;
        while (true)
        {
            await ConfirmLeadersAsync(waiting, deadline, timeout, cancellationToken).ConfigureAwait(false);
            if (ForwardContext.IsForwarded) return LocalShards().Where(x => shards.Contains(x.Id)).ToArray();
            var all = GetShards().ToDictionary(x => x.Id);
            waiting = shards.Where(id => !all.TryGetValue(id, out var x) || x.Leader == 0).ToArray();
            if (waiting.Length == 0) return shards.Select(id => all[id]).ToArray();
            if (Remaining(deadline) <= TimeSpan.Zero)
                throw new QuorumUnavailableException(waiting[0], timeout, "its leadership was moving when the wait ended") { Target = waiting[0] };
            await _host.WaitForChangeAsync(RetryBackoff, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Waits until each of <paramref name="shards"/> has a leader that can confirm a linearizable read (it committed an
    /// entry of its term and hears from a quorum), one after the other, within <paramref name="deadline"/>.</summary>
    private async Task ConfirmLeadersAsync(int[] shards, long deadline, TimeSpan timeout, CancellationToken cancellationToken)
    {
        foreach (int id in shards)
        {
            await RouteAsync(id, deadline, idempotent: true,
                local: async remaining =>
                {
                    await _host.ConfirmReadAsync(id, lease: false).WaitAsync(remaining, cancellationToken).ConfigureAwait(false);
                    return true;
                },
                remote: async (target, remaining) =>
                {
                    await CallPeerAsync(target, cid => new ForwardedRequest(cid, new WaitForLeadersRequest(cid, id, remaining)), remaining, cancellationToken).ConfigureAwait(false);
                    return true;
                },
                why => new QuorumUnavailableException(id, timeout, why) { Target = id },
                cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Stops a node. This node: stops it (the process's -Wait then returns); once its loop has ended, and before its
    /// listener and connections close, it tells its running peers that it stopped on request (so they show it Stopped,
    /// not Unreachable) and then calls <paramref name="answer"/>, with which the client session answers the request
    /// (bug fixed: it answered only after the stop, on a connection the stop had closed, so the client retried and,
    /// when this was the only node it could reach, failed with "None of the endpoints answered" after a stop that
    /// succeeded). Another node: asks it to stop itself; a node that does not answer is taken as stopped already
    /// (stopping is idempotent).
    /// </summary>
    public async Task StopNodeAsync(int id, bool kill, Func<Task>? answer, CancellationToken cancellationToken)
    {
        ThrowIfStopped();
        if (id == NodeId)
        {
            await StopAsync(kill, async () =>
            {
                await AnnounceStoppedAsync().ConfigureAwait(false);
                if (answer is not null) await answer().ConfigureAwait(false);
            }).ConfigureAwait(false);
            return;
        }
        if (!_metadata.Nodes.ContainsKey(id)) throw new NodeNotFoundException(id) { Target = id };
        if (ForwardContext.IsForwarded) throw new NotLeaderException(0, NodeId, id);
        try
        {
            await CallPeerAsync(id, cid => new ForwardedRequest(cid, new StopNodeRequest(cid, id, kill)), TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is PeerUnreachableException or ConnectionLostException)
        {
            // Not running (or it stopped while answering): the node is stopped either way.
        }
        NoteStopped(id);
    }

    /// <summary>
    /// This node is running already. Another node is started only where it is hosted: in this same process (an
    /// embedded cluster's sibling, <see cref="NodeOptions.StartSibling"/>); a node in its own process can only be
    /// started by starting that process again.
    /// </summary>
    public async Task StartNodeAsync(int id, CancellationToken cancellationToken)
    {
        ThrowIfStopped();
        if (id == NodeId) return;
        if (!_metadata.Nodes.ContainsKey(id)) throw new NodeNotFoundException(id) { Target = id };
        if (_options.StartSibling is { } start && await start(id, cancellationToken).ConfigureAwait(false))
        {
            await RefreshPeerAsync(id).ConfigureAwait(false); // its status is Running from now on, not at the next poll
            return;
        }
        await PollPeerAsync(id, cancellationToken).ConfigureAwait(false); // its state now, not as of the last poll
        if (PeerIsRunning(id)) return;
        throw new NotSupportedRemotelyException(
            $"Node {id} runs in its own process; start that process again (Start-ReplicationNode -Path <its folder> -Listen {EndpointOf(id)} -ClusterSecret ...).") { Target = id };
    }

    private static long Deadline(TimeSpan timeout) => Stopwatch.GetTimestamp() + (long)(Math.Min(timeout.TotalSeconds, 86_400) * Stopwatch.Frequency);

    private static TimeSpan Remaining(long deadline) =>
        TimeSpan.FromSeconds((deadline - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency);
}
