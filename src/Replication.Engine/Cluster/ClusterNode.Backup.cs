using System.Diagnostics;
using System.Security.Cryptography;
using Replication.Engine.Client;
using Replication.Engine.Raft;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// Backups, node side. <b>Hot</b>: this node coordinates a consistent cut across every shard — each shard's
/// leader raises a write barrier, fixes its cut index at its last log index and registers a capture there
/// (NodeHost.Cut.cs explains why the cut is consistent); once every barrier is up, all are lowered again (the
/// pause writers see is measured and reported) — then waits until every capture is taken. The client reads
/// each shard's rows from the node holding its capture, page by page, and checks the key count and the
/// SHA-256 the holder computed over the rows. <b>Cold</b>: the node itself hands its leaderships away, holds
/// its loop while SQLite's backup API copies raft.db and state.db (a copy of a node at rest, as a stopped
/// node's files would be), resumes, and keeps the copies until the client read them.
/// </summary>
public sealed partial class ClusterNode
{
    /// <summary>Longest a shard's write barrier may stay up if its coordinator vanishes.</summary>
    private static readonly TimeSpan BarrierHoldLimit = TimeSpan.FromSeconds(2);
    /// <summary>Longest a coordinator waits to raise one barrier before it gives the attempt up (lowering the others).</summary>
    private static readonly TimeSpan BarrierRaiseTimeout = TimeSpan.FromSeconds(1.5);
    private const int MaxRowsPerRead = 10_000;
    private const int MaxFileChunk = 1 << 20;

    // ---- hot backup: the coordinator ----

    private async Task<BackupTicket> BeginBackupAsync(TimeoutArgs args, CancellationToken ct)
    {
        var timeout = TimeSpan.FromMilliseconds(args.TimeoutMs);
        var deadline = Deadline(timeout);
        string why = "no attempt completed";
        for (int attempt = 1; Remaining(deadline) > TimeSpan.Zero; attempt++)
        {
            ct.ThrowIfCancellationRequested();
            var cutId = Guid.NewGuid();
            var created = DateTimeOffset.UtcNow;
            var map = Map;
            var shardIds = map.Ranges.Select(r => r.Shard).ToArray();
            var raise = shardIds.Select(s => RaiseRoutedAsync(cutId, s, Min(Remaining(deadline), BarrierRaiseTimeout), ct)).ToArray();
            try
            {
                await Task.WhenAll(raise).ConfigureAwait(false);
            }
            catch (Exception e) when (e is ReplicationException or TimeoutException && !ct.IsCancellationRequested)
            {
                why = e.Message;
            }
            // Every barrier that went up comes down, also when the attempt failed.
            var raised = raise.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result).ToArray();
            var lowered = await Task.WhenAll(raised.Select(c => LowerQuietlyAsync(cutId, c, ct))).ConfigureAwait(false);
            if (raised.Length < shardIds.Length)
            {
                await EndCutEverywhereAsync(cutId, raised.Select(c => c.Answer.Node)).ConfigureAwait(false);
                await Task.Delay(RetryBackoff * 4, ct).ConfigureAwait(false);
                continue;
            }
            try
            {
                var contents = await Task.WhenAll(raised.Select(c =>
                    CallAdminAsync<ShardContentAnswer>(c.Answer.Node, AdminOps.BackupWait, new CutArgs(cutId, c.Shard, 0), Remaining(deadline) + NetworkMargin, ct))).ConfigureAwait(false);
                // A shard that split after the map this attempt started from holds less than the map gives it: the cut
                // would miss the rows of the new shard. Another attempt, with the newer map.
                if (contents.Select((c, i) => (c.Answer, Range: map.RangeOf(raised[i].Shard))).FirstOrDefault(x => x.Answer.RangeStart is ulong start
                        && (start != x.Range.Start || x.Answer.RangeLast != x.Range.Last)) is { Answer: not null } moved)
                {
                    why = $"shard {moved.Range.Shard} split during the cut";
                    await EndCutEverywhereAsync(cutId, raised.Select(c => c.Answer.Node)).ConfigureAwait(false);
                    await Task.Delay(RetryBackoff * 4, ct).ConfigureAwait(false);
                    continue;
                }
                var shards = raised.Select((c, i) => new BackupTicketShard(c.Shard, c.Answer.Node, c.Answer.Index, c.Answer.Term, contents[i].Answer.KeyCount, contents[i].Answer.Sha256))
                    .OrderBy(s => s.Shard).ToArray();
                Log($"node {NodeId}: backup cut {cutId:N} taken at [{string.Join(", ", shards.Select(s => $"{s.Shard}@{s.Index}"))}]; writes held at most {lowered.Max() / 1000.0:0.###} ms");
                return new BackupTicket(cutId, created, lowered.Max(), shards);
            }
            catch (Exception e) when (e is ReplicationException or TimeoutException && !ct.IsCancellationRequested)
            {
                why = e.Message; // a capture failed: the log changed under a leader change, or a leader stopped
                await EndCutEverywhereAsync(cutId, raised.Select(c => c.Answer.Node)).ConfigureAwait(false);
            }
        }
        throw new QuorumUnavailableException(0, timeout, $"no consistent cut across the shards could be taken: {why}");
    }

    private async Task<(int Shard, CutAnswer Answer)> RaiseRoutedAsync(Guid cutId, int shard, TimeSpan timeout, CancellationToken ct)
    {
        var args = new CutArgs(cutId, shard, (long)BarrierHoldLimit.TotalMilliseconds);
        var answer = await RouteAsync(shard, Deadline(timeout), idempotent: false,
            local: _ => RaiseBarrierAsync(args),
            remote: async (target, remaining) => (await CallAdminAsync<CutAnswer>(target, AdminOps.BackupRaise, args, remaining + NetworkMargin, ct).ConfigureAwait(false)).Answer,
            why => new QuorumUnavailableException(shard, timeout, why) { Target = shard },
            ct).ConfigureAwait(false);
        return (shard, answer);
    }

    private async Task<long> LowerQuietlyAsync(Guid cutId, (int Shard, CutAnswer Answer) cut, CancellationToken ct)
    {
        try
        {
            return (await CallAdminAsync<LowerAnswer>(cut.Answer.Node, AdminOps.BackupLower, new CutArgs(cutId, cut.Shard, 0), TimeSpan.FromSeconds(5), ct).ConfigureAwait(false)).Answer.HeldMicros;
        }
        catch (Exception e) when (e is ReplicationException or TimeoutException or PeerUnreachableException or ConnectionLostException)
        {
            return (long)BarrierHoldLimit.TotalMicroseconds; // it lowers itself at its hold limit
        }
    }

    private async Task EndCutEverywhereAsync(Guid cutId, IEnumerable<int> nodes)
    {
        foreach (int node in nodes.Distinct())
        {
            try { await CallAdminAsync<Empty>(node, AdminOps.BackupEnd, new CutIdArgs(cutId), TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(false); }
            catch (Exception e) when (e is ReplicationException or TimeoutException or PeerUnreachableException or ConnectionLostException) { /* expires on its own */ }
        }
    }

    // ---- hot backup: the leader of a shard ----

    private async Task<CutAnswer> RaiseBarrierAsync(CutArgs args)
    {
        var cut = await _host.BeginCutAsync(args.Shard, args.CutId, TimeSpan.FromMilliseconds(Math.Clamp(args.HoldMs, 1, 10_000))).ConfigureAwait(false);
        var held = new HeldSnapshot(args.CutId, cut.Capture, folder: null);
        if (_held.TryRemove(HeldKey(args.CutId, args.Shard), out var old)) old.Dispose();
        _held[HeldKey(args.CutId, args.Shard)] = held;
        return new CutAnswer(NodeId, cut.Index, cut.Term);
    }

    private async Task<LowerAnswer> LowerBarrierAsync(CutArgs args) =>
        new((long)(await _host.EndCutAsync(args.Shard, args.CutId).ConfigureAwait(false)).TotalMicroseconds);

    /// <summary>Waits for a cut's capture, then counts and hashes its rows once (what the reader checks).</summary>
    private async Task<ShardContentAnswer> WaitCaptureAsync(CutArgs args, CancellationToken ct)
    {
        var held = Held(args.CutId, args.Shard, "backup cut");
        ShardSnapshot snapshot;
        try
        {
            snapshot = await held.Capture!.WaitAsync(AdminCallTimeout, ct).ConfigureAwait(false);
        }
        catch (RetryableException e)
        {
            throw new RemoteOperationException("CutFailed", ReplicationErrorKind.Unavailable, $"Shard {args.Shard}: {e.Message}");
        }
        await held.Gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (held.Sha256 is null)
            {
                var (count, sha) = await Task.Run(() => RowDigest.Of(snapshot.Rows()), ct).ConfigureAwait(false);
                held.KeyCount = count;
                held.Sha256 = sha;
            }
            return new ShardContentAnswer(held.KeyCount, held.Sha256, snapshot.Range?.Start, snapshot.Range?.Last);
        }
        finally { held.Gate.Release(); }
    }

    /// <summary>The next page of a cut's rows after a key (stateless paging over the held snapshot).</summary>
    private (string, ReadOnlyMemory<byte>) ReadBackupRows(ReadArgs args)
    {
        var held = Held(args.CutId, args.Shard, "backup cut");
        if (held.Capture is not { IsCompletedSuccessfully: true } capture)
            throw new RemoteOperationException("CutFailed", ReplicationErrorKind.Unavailable, $"Shard {args.Shard}'s capture on node {NodeId} is not taken.");
        held.Gate.Wait();
        try
        {
            int max = Math.Clamp(args.MaxRows, 1, MaxRowsPerRead);
            var rows = new List<StoredKey>(Math.Min(max, 1024));
            long bytes = 0;
            foreach (var row in capture.Result.RowsAfter(args.After))
            {
                rows.Add(row);
                bytes += (row.Key.Length + row.Value.Length) * 3L + 24;
                if (rows.Count >= max || bytes >= MaxFileChunk) break;
            }
            bool done = rows.Count < max && bytes < MaxFileChunk;
            var chunk = SnapshotChunkCodec.Encode(rows, int.MaxValue).Single();
            return (WireJson.Serialize(new ReadAnswer(done, rows.Count)), chunk);
        }
        finally { held.Gate.Release(); }
    }

    // ---- cold backup: the node being copied ----

    private async Task<ColdTicket> BeginColdCopyAsync(TimeoutArgs args, CancellationToken ct)
    {
        var timeout = TimeSpan.FromMilliseconds(args.TimeoutMs);
        var status = _host.Status;
        await EnsureFreshAsync(status.Values.SelectMany(s => s.Voters), ct).ConfigureAwait(false);
        foreach (var st in status.Values.OrderBy(s => s.Shard))
        {
            // The node goes quiet while it is copied: every group it votes in must keep a running quorum without it, the
            // metadata group too (without one no node can join, move, split or be marked, and a forced recovery waits).
            var voters = st.Voters;
            if (!voters.Contains(NodeId)) continue;
            var down = voters.Where(v => v != NodeId && !PeerIsRunning(v)).Order().ToArray();
            if (voters.Count - 1 - down.Length >= voters.Count / 2 + 1) continue;
            string name = st.Shard == ClusterMetadata.MetadataGroup ? $"the metadata group (shard {st.Shard})" : $"shard {st.Shard}";
            throw new QuorumAtRiskException($"A cold copy takes node {NodeId} out of service while it runs, which would leave {name} without a running quorum: "
                + (down.Length > 0
                    ? $"of its voters [{string.Join(",", voters.Order())}], node{(down.Length > 1 ? "s" : "")} {string.Join(", ", down)} {(down.Length > 1 ? "are" : "is")} not running; start {(down.Length > 1 ? "them" : "it")} first, or copy a stopped node."
                    : $"it has only voters [{string.Join(",", voters.Order())}]; stop the node first (a stopped node can always be copied)."), NodeId, st.Shard) { Target = NodeId };
        }
        await HandLeadershipsAwayAsync(Deadline(Min(timeout, TimeSpan.FromSeconds(5))), ct).ConfigureAwait(false);

        var ticket = Guid.NewGuid();
        string folder = System.IO.Path.Combine(_options.Path, ColdFolderPrefix + ticket.ToString("N"));
        Directory.CreateDirectory(folder);
        var held = new HeldSnapshot(ticket, capture: null, folder);
        _held[HeldKey(ticket, 0)] = held;
        try
        {
            // Both files from one instant at rest: the loop writes nothing while it runs this.
            await _host.RunHeldAsync(() =>
            {
                ShardFile.CopyDatabase(System.IO.Path.Combine(_options.Path, "raft.db"), System.IO.Path.Combine(folder, "raft.db"));
                ShardFile.CopyStateMachine(_options.Path, System.IO.Path.Combine(folder, "state.db"));
            }).ConfigureAwait(false);
            var shards = ShardFile.InspectStateDb(System.IO.Path.Combine(folder, "state.db"),
                status.Keys.Where(s => s != ClusterMetadata.MetadataGroup).Order());
            var files = new[] { "raft.db", "state.db" }.Select(name =>
            {
                var path = System.IO.Path.Combine(folder, name);
                return new ColdFile(name, new FileInfo(path).Length, BackupManifest.HashFile(path));
            }).ToArray();
            Log($"node {NodeId}: cold copy {ticket:N} of raft.db and state.db taken");
            return new ColdTicket(ticket, DateTimeOffset.UtcNow, files, shards.Select(c => new ColdShard(c.Shard, c.Index, c.Term, c.KeyCount)).ToArray());
        }
        catch
        {
            EndHeld(ticket);
            throw;
        }
    }

    /// <summary>Transfers every leadership this node holds to another caught-up voter, waiting until the deadline.</summary>
    private async Task HandLeadershipsAwayAsync(long deadline, CancellationToken ct)
    {
        while (Remaining(deadline) > TimeSpan.Zero)
        {
            var led = _host.Status.Values.Where(s => s.Role == RaftRole.Leader && s.Voters.Count > 1).ToArray();
            if (led.Length == 0) return;
            foreach (var st in led)
            {
                int target = st.Voters.Where(v => v != NodeId && PeerIsRunning(v))
                    .OrderByDescending(v => st.MatchIndexes.TryGetValue(v, out long m) ? m : 0).FirstOrDefault();
                if (target != 0) await _host.TransferLeadershipAsync(st.Shard, target).ConfigureAwait(false);
            }
            await Task.Delay(RetryBackoff * 2, ct).ConfigureAwait(false);
        }
    }

    /// <summary>A chunk of a held file (a cold copy).</summary>
    private async Task<ReadOnlyMemory<byte>> ReadHeldFileAsync(FileReadArgs args, CancellationToken ct)
    {
        var held = Held(args.Ticket, 0, "cold copy");
        string path = HeldFile(held, args.Name);
        int count = Math.Clamp(args.Count, 1, MaxFileChunk);
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        if (args.Offset < 0 || args.Offset > file.Length) throw new RemoteOperationException("InvalidOffset", ReplicationErrorKind.InvalidArgument, $"Offset {args.Offset} is outside '{args.Name}'.");
        file.Position = args.Offset;
        var buffer = new byte[(int)Math.Min(count, file.Length - args.Offset)];
        await file.ReadExactlyAsync(buffer, ct).ConfigureAwait(false);
        return buffer;
    }

    /// <summary>Stores a chunk of an uploaded file (a cold backup sent for a node restore) under its ticket.</summary>
    private async Task<Empty> WriteUploadAsync(FileWriteArgs args, ReadOnlyMemory<byte> blob, CancellationToken ct)
    {
        string key = HeldKey(args.Ticket, 0);
        var held = _held.GetOrAdd(key, _ =>
        {
            string folder = System.IO.Path.Combine(_options.Path, UploadFolderPrefix + args.Ticket.ToString("N"));
            Directory.CreateDirectory(folder);
            return new HeldSnapshot(args.Ticket, capture: null, folder);
        });
        Touch(held);
        string path = HeldFile(held, args.Name);
        await using var file = new FileStream(path, args.Offset == 0 ? FileMode.Create : FileMode.Open, FileAccess.Write, FileShare.None);
        if (file.Length != args.Offset) throw new RemoteOperationException("InvalidOffset", ReplicationErrorKind.InvalidArgument, $"'{args.Name}' has {file.Length} bytes; a chunk for offset {args.Offset} does not follow.");
        file.Position = args.Offset;
        await file.WriteAsync(blob, ct).ConfigureAwait(false);
        if (args.Last) file.Flush(flushToDisk: true);
        return new Empty();
    }

    private static string HeldFile(HeldSnapshot held, string name)
    {
        if (name is not ("raft.db" or "state.db" or "backup.json"))
            throw new RemoteOperationException("InvalidFileName", ReplicationErrorKind.InvalidArgument, $"'{name}' is not a file of a node backup.");
        return System.IO.Path.Combine(held.Folder!, name);
    }

    /// <summary>Folders a node keeps beside its stores while a cold copy or an upload is held (removed at start).</summary>
    internal const string ColdFolderPrefix = "cold-copy-";
    internal const string UploadFolderPrefix = "upload-";

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;
}
