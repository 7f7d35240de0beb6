using Replication.Engine.Transport;
using System.Buffers.Binary;
using Replication.Engine.Raft;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// Log compaction and snapshot transfer on the node loop thread (Raft paper section 7).
///
/// Compaction: once enough applied entries pile up behind a group's last snapshot, the state
/// machine is made durable (one fsync) and the log is compacted to a point some entries below the
/// applied index. The state machine itself is the snapshot: nothing is copied.
///
/// Sending: when a core asks to send a Snapshot message (a follower needs compacted entries), the
/// host opens a consistent read of that shard at its current applied index A (A is at least the
/// compacted index, so it serves just as well and needs no stored copy) and streams it in chunks,
/// up to <see cref="NodeHostOptions.SnapshotWindow"/> of them in flight, each further one sent on an
/// acknowledgment (stop-and-wait made one round trip through both nodes' loops per chunk the
/// ceiling: 1-10 MB/s measured). The rows are read and encoded (and the CRC computed) by a task of
/// the transfer's own, at most a window ahead, which wakes the loop when a chunk is ready: done on
/// the loop thread, reading a 33 MB shard held the sender's loop for about a second, and its other
/// shards lost their leaders (bench, ring scenario). The transfer is abandoned (ReportSnapshot false, Raft retries later)
/// if an acknowledgment is late, refused or the node stops leading. Chunks travel in order on the
/// one peer connection, and the receiver takes them only in sequence: a chunk lost with a broken
/// connection makes the next one refused, which ends the transfer. The last chunk carries the
/// metadata at A and a CRC-32C over all chunks; the first carries the shard's hash range when it took part in a split
/// (SnapshotChunkCodec), which the install records with the rows (KvStore.RecordRange).
///
/// Receiving: chunks from the current leader are staged (in memory, past 64 MiB in a file); on the last one the
/// CRC is checked, and only then the Snapshot message is stepped into the core. The core decides
/// whether to take it; if it does, the next Ready carries <see cref="Ready.Snapshot"/> and the host
/// installs the staged rows (replacing the shard, durable) before it discards the log, and only then acknowledges the
/// last chunk (so the leader holds its log from the snapshot's index until the rows are stored). A node that
/// crashes mid-transfer loses only what was staged (a staging file is deleted at start-up).
///
/// Installing without stalling the node: storing a snapshot's rows takes a while (8 MB: 0.5-2.5 s measured), and done
/// in one go on the loop thread it held every other group of the node (heartbeats included) for that long: elections
/// and write stalls on every shard the node holds, at each move. A fresh replica (nothing in its log, nothing applied:
/// the case of a move's new learner) therefore stores the rows first, one received chunk (about 256 KiB) per
/// transaction, for at most <see cref="InstallSlice"/> per loop iteration, while its group is paused (no ticks, no messages: its core stays exactly as it was when the last chunk came), and steps the Snapshot
/// message into the core only once they are all in and durable; the last chunk is acknowledged then. The first batch
/// writes a marker in state.db that the last one removes; a crash or a failed batch in between leaves the marker, and
/// the node's next start discards the partial rows (KvStore.DiscardPartialInstalls): the replica is fresh again and
/// is sent the snapshot again. A replica with data of its own installs in one transaction, as before (a crash
/// mid-way must leave its old state machine, which its log continues).
/// </summary>
internal sealed partial class NodeHost
{
    private readonly Dictionary<(int Shard, int To), OutgoingSnapshot> _outgoing = new();
    private readonly Dictionary<int, IncomingSnapshot> _incoming = new();
    /// <summary>Per shard: the received snapshot the core accepted, waiting for its Ready.Snapshot to be installed.</summary>
    private readonly Dictionary<int, IncomingSnapshot> _accepted = new();
    private long _incomingSeq;
    /// <summary>When each snapshot chunk reached the node (the transport's thread), for how long it waited for the loop.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<RaftMessage, long> _chunkArrivals = new(ReferenceEqualityComparer.Instance);
    /// <summary>Per shard: a fresh replica's snapshot being stored in batches; its group is paused meanwhile.</summary>
    private readonly Dictionary<int, SnapshotInstall> _installs = new();
    /// <summary>When the current loop iteration began (loop thread only): a batched install reports the longest iteration.</summary>
    private TimeSpan _iterationBegan;

    /// <summary>Loop time a batched install may use per iteration before the node turns to its other work.</summary>
    private static readonly TimeSpan InstallSlice = TimeSpan.FromMilliseconds(10);

    private string SnapshotFolder => Path.Combine(_options.DataPath, "snapshots");

    private void MaybeCompact()
    {
        List<GroupRuntime>? due = null;
        foreach (var g in _groups.Values)
        {
            long target = CompactionPoint(g);
            if (target - g.Core.LastSnapshot.Index >= _options.SnapshotEntries) (due ??= new()).Add(g);
        }
        if (due is null) return;
        _kv!.Flush(); // the log is about to stop being able to replay these entries
        foreach (var g in due)
        {
            g.Core.Compact(CompactionPoint(g));
            _logStore!.SaveSnapshot(g.Core.Group, g.Core.LastSnapshot, discardLog: false);
        }
    }

    /// <summary>
    /// Where <paramref name="g"/>'s log may be compacted to: some entries below the applied index, and not past a snapshot
    /// this node is sending (the transfer ends once the receiver has stored it, which takes seconds for a large shard). The
    /// receiver continues from the snapshot's index; compacted past it meanwhile, it needed a second snapshot at once, and
    /// that one it stores in one go, holding its loop for the whole install (ring bench: 1.2-1.8 s, with elections).
    /// </summary>
    private long CompactionPoint(GroupRuntime g)
    {
        long point = g.Core.Applied - _options.SnapshotCatchUpEntries;
        foreach (var ((shard, _), transfer) in _outgoing)
            if (shard == g.Core.Group) point = Math.Min(point, transfer.Metadata.Index);
        return point;
    }

    private void StartSnapshotTransfer(GroupRuntime g, RaftMessage request)
    {
        int shard = g.Core.Group;
        AbortSnapshotTransfer((shard, request.To));
        var reader = _kv!.OpenSnapshot(shard);
        SnapshotMetadata metadata;
        try
        {
            // In the loop, between iterations, the store's applied index is the core's.
            metadata = g.Core.MetadataAt(reader.Index);
        }
        catch
        {
            reader.Dispose();
            throw;
        }
        var transfer = new OutgoingSnapshot(reader, metadata, request.To, request.Term, _options.SnapshotChunkBytes, _options.SnapshotWindow, () => _wake.Set())
        {
            LastProgressAt = _clock.Elapsed, // the first chunk may take a moment to read: the ack timeout runs from now
            StartedAt = _clock.Elapsed,
            GcPausedBefore = GC.GetTotalPauseDuration(),
        };
        _outgoing[(shard, request.To)] = transfer;
        _options.Log?.Invoke($"node {Id}: shard {shard}: sending a snapshot at index {reader.Index} to node {ReplicaIds.NodeOf(request.To)}");
        FillWindow(shard, transfer);
    }

    /// <summary>Every loop iteration: sends what the transfers' readers have encoded since, as far as their windows allow.</summary>
    private void PumpSnapshotTransfers()
    {
        if (_outgoing.Count == 0) return;
        foreach (var (key, t) in _outgoing.ToArray()) FillWindow(key.Shard, t);
    }

    /// <summary>Sends the chunks that are ready until the window is full or the last one is out; abandons the transfer
    /// when reading the shard failed.</summary>
    private void FillWindow(int shard, OutgoingSnapshot t)
    {
        while (!t.SentLast && t.Sent - t.Acked < _options.SnapshotWindow)
        {
            switch (t.TryTake(out var chunk, out uint crc, out bool last))
            {
                case ChunkState.Ready:
                    SendChunk(shard, t, chunk!, crc, last);
                    break;
                case ChunkState.Failed:
                    _options.Log?.Invoke($"node {Id}: shard {shard}: reading the snapshot for node {ReplicaIds.NodeOf(t.To)} failed: {t.Failure?.Message}");
                    FinishTransfer(shard, t, succeeded: false);
                    return;
                default:
                    return; // the reader wakes the loop when the next one is ready
            }
        }
    }

    private void SendChunk(int shard, OutgoingSnapshot t, byte[] chunk, uint crc, bool last)
    {
        t.Crc = crc;
        long sequence = t.Sent++;
        t.NoteSent(sequence);
        t.LastProgressAt = _clock.Elapsed;
        _transport!.Send(new RaftMessage
        {
            Type = MessageType.SnapshotChunk,
            Group = shard,
            From = _groups.TryGetValue(shard, out var sender) ? sender.Core.Id : Id, // the leader's member id (ReplicaIds)
            To = t.To,
            Term = t.Term,
            Index = t.Metadata.Index,
            LogTerm = t.Metadata.Term,
            Context = sequence,
            Commit = last ? 1 : 0,
            RejectHint = last ? t.Crc : 0,
            Voters = last ? t.Metadata.Voters : Array.Empty<int>(),
            Learners = last ? t.Metadata.Learners : Array.Empty<int>(),
            Entries = new[] { new LogEntry(sequence + 1, t.Metadata.Term, EntryType.Normal, chunk) },
        });
        t.SentLast = last;
    }

    private void OnSnapshotAck(RaftMessage ack)
    {
        // Acknowledgments come in chunk order; one of an older transfer to the same peer, or a duplicate, is ignored.
        if (!_outgoing.TryGetValue((ack.Group, ack.From), out var t) || ack.Context != t.Acked) return;
        if (ack.Reject)
        {
            FinishTransfer(ack.Group, t, succeeded: false);
            return;
        }
        t.NoteAcked(t.Acked);
        t.Acked++;
        t.LastProgressAt = _clock.Elapsed;
        if (t.SentLast && t.Acked == t.Sent)
        {
            FinishTransfer(ack.Group, t, succeeded: true);
            return;
        }
        FillWindow(ack.Group, t);
    }

    private void FinishTransfer(int shard, OutgoingSnapshot t, bool succeeded)
    {
        _outgoing.Remove((shard, t.To));
        t.Stop();
        // The sender's side of a copy's figures (the receiver logs the rest when it installs): where a slow stream spends its time.
        if (succeeded)
            _options.Log?.Invoke(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"node {Id}: shard {shard}: snapshot at index {t.Metadata.Index} sent to node {ReplicaIds.NodeOf(t.To)}: {t.Bytes} bytes in {t.Sent} chunks in {(_clock.Elapsed - t.StartedAt).TotalMilliseconds:0} ms, reading and encoding {t.ReadTime.TotalMilliseconds:0} ms, waiting for the window {t.WindowWait.TotalMilliseconds:0} ms, acknowledged in {t.RoundTrips().Median:0} ms (median; longest {t.RoundTrips().Max:0} ms), the process paused for garbage collection {(GC.GetTotalPauseDuration() - t.GcPausedBefore).TotalMilliseconds:0} ms meanwhile"));
        if (_groups.TryGetValue(shard, out var g)) g.Core.ReportSnapshot(t.To, succeeded);
    }

    private void ExpireSnapshotTransfers()
    {
        if (_outgoing.Count == 0) return;
        var now = _clock.Elapsed;
        foreach (var (key, t) in _outgoing.ToArray())
            if (now - t.LastProgressAt > _options.SnapshotAckTimeout) FinishTransfer(key.Shard, t, succeeded: false);
    }

    private void AbortSnapshotTransfer((int Shard, int To) key)
    {
        if (_outgoing.TryGetValue(key, out var t)) FinishTransfer(key.Shard, t, succeeded: false);
    }

    /// <summary>Abandons the transfers of one shard (it lost leadership), or of all shards.</summary>
    private void AbortSnapshotTransfers(int? shard = null)
    {
        foreach (var key in _outgoing.Keys.Where(k => shard is null || k.Shard == shard).ToArray()) AbortSnapshotTransfer(key);
        if (shard is null)
        {
            foreach (var incoming in _incoming.Values.Concat(_accepted.Values).Concat(_installs.Values.Select(i => i.Staging))) incoming.Dispose();
            _incoming.Clear();
            _accepted.Clear();
            _installs.Clear(); // the rows stored so far stay, with their marker: the next start discards them
        }
    }

    /// <summary>Abandons a batched install of <paramref name="shard"/> (its group is no longer hosted here). Its rows stay
    /// with their marker until the caller drops the shard's data (KvStore.DropShard removes both) or the node restarts.</summary>
    private void AbortInstall(int shard)
    {
        if (_installs.Remove(shard, out var install)) install.Staging.Dispose();
    }

    /// <summary>True while <paramref name="shard"/>'s replica stores a snapshot in batches: its core is paused.</summary>
    private bool IsInstalling(int shard) => _installs.Count > 0 && _installs.ContainsKey(shard);

    private void OnSnapshotChunk(RaftMessage m)
    {
        // A snapshot for a replica this node does not host (dropped: its tombstone; or not yet) is refused, and creates none.
        // So is any chunk while the replica stores a snapshot (a new leader's transfer: it tries again after the install).
        if (!_groups.TryGetValue(m.Group, out var g) || m.To != g.Core.Id || m.Entries.Count != 1 || m.Term < g.Core.Term || IsInstalling(m.Group))
        {
            _chunkArrivals.TryRemove(m, out _);
            Ack(m, reject: true);
            return;
        }
        byte[] chunk = m.Entries[0].Data;
        _chunkArrivals.TryRemove(m, out long arrived);
        _incoming.TryGetValue(m.Group, out var staging);
        if (m.Context == 0)
        {
            staging?.Dispose();
            Directory.CreateDirectory(SnapshotFolder);
            // One file per transfer: an accepted one waiting to be installed keeps its own (see below).
            staging = new IncomingSnapshot(Path.Combine(SnapshotFolder, $"shard-{m.Group}-{++_incomingSeq}.incoming"), m.From, m.Index, m.LogTerm, _clock.Elapsed, _options.SnapshotStagingMemory);
            _incoming[m.Group] = staging;
        }
        else if (staging is null || staging.Leader != m.From || staging.Index != m.Index || staging.Expected != m.Context)
        {
            Ack(m, reject: true); // a chunk of a transfer we do not have (lost, restarted, or superseded)
            return;
        }
        staging.Append(chunk);
        if (arrived != 0) staging.NoteQueued(System.Diagnostics.Stopwatch.GetElapsedTime(arrived));
        if (m.Commit != 1)
        {
            Ack(m, reject: false);
            return;
        }
        staging.Complete(_clock.Elapsed);
        if (staging.Crc != (uint)m.RejectHint)
        {
            _options.Log?.Invoke($"node {Id}: snapshot of shard {m.Group} from node {m.From} failed its checksum; discarded");
            staging.Dispose();
            _incoming.Remove(m.Group);
            Ack(m, reject: true);
            return;
        }
        _incoming.Remove(m.Group);
        if (IsFresh(g) && m.Index > 0)
        {
            // Stored in batches first, the group paused; the core hears of it once it is all in (ContinueInstalls).
            _installs[m.Group] = new SnapshotInstall(staging, m);
            return;
        }
        // Verified: hand it to the core, which installs it (via Ready.Snapshot) only if it is news.
        long before = g.Core.LastSnapshot.Index;
        g.Core.Step(SnapshotMessage(g, m));
        // Keep the data only when the core took the snapshot (it restarts its log there, so its
        // snapshot index moves); until the Ready installs it, it is set apart from _incoming, so
        // that another transfer arriving in the same inbox drain (a retry the leader started after
        // giving up on this one, or a stale one the core ignores) cannot replace the data the core
        // is about to install. Found by the simulator (a stale transfer overwrote the accepted one).
        if (g.Core.LastSnapshot.Index != before)
        {
            if (_accepted.Remove(m.Group, out var older)) older.Dispose();
            _accepted[m.Group] = staging;
            // Acknowledged once stored (InstallSnapshot): until then the leader keeps the transfer, and with it its log
            // from the snapshot's index (CompactionPoint). Acknowledged here, the leader compacted past the index while
            // this replica stored the rows (one transaction: 0.7-1.5 s for 33 MB), and sent a second snapshot of the whole
            // shard as soon as it answered (ring bench, node 2 restarting: two 33 MB copies, two such stalls, and a
            // leadership handed to it between them that timed out).
            staging.PendingAck = m;
            return;
        }
        staging.Dispose();
        Ack(m, reject: false);
    }

    /// <summary>The Snapshot message a verified transfer's last chunk <paramref name="last"/> stands for.</summary>
    private static RaftMessage SnapshotMessage(GroupRuntime g, RaftMessage last) => new()
    {
        Type = MessageType.Snapshot,
        Group = last.Group,
        From = last.From,
        To = g.Core.Id,
        Term = last.Term,
        Index = last.Index,
        LogTerm = last.LogTerm,
        Voters = last.Voters,
        Learners = last.Learners,
    };

    /// <summary>A replica with nothing in its log and nothing applied (a move's new learner): a crash in the middle of
    /// storing a snapshot can make it empty again without losing anything it had.</summary>
    private bool IsFresh(GroupRuntime g) =>
        g.Core.LastIndex == 0 && g.Core.LastSnapshot.Index == 0 && g.Core.Applied == 0 && _kv!.AppliedIndex(g.Core.Group) == 0;

    /// <summary>
    /// Stores the next batches of the batched installs, for at most <see cref="InstallSlice"/> in all, and completes
    /// those whose rows are all in: the rows made durable with the applied index, then the Snapshot message stepped into
    /// the core (which takes it: nothing reached it since the last chunk, so it is the fresh core that was checked then),
    /// the last chunk acknowledged; the next Ready's snapshot then only records the log's new start.
    /// </summary>
    private void ContinueInstalls()
    {
        if (_installs.Count == 0) return;
        var until = _clock.Elapsed + InstallSlice;
        foreach (var (shard, install) in _installs.ToArray())
        {
            if (_clock.Elapsed >= until) break;
            var g = _groups[shard]; // a group leaves _groups only with its install (AbortInstall)
            var last = install.Last;
            try
            {
                while (!install.RowsDone && _clock.Elapsed < until)
                {
                    var chunk = install.NextChunk();
                    _storage!.InstallSnapshotRows(shard, last.Index, last.LogTerm, chunk, first: install.Batches == 0);
                    install.Batches++;
                }
                if (!install.RowsDone) continue;
                _storage!.CompleteSnapshotInstall(shard, last.Index, last.LogTerm, install.Staging.Range);
            }
            catch (Exception e) when (StorageErrors.IsDiskFull(e))
            {
                // Nothing of the failed batch was stored; the partial rows keep their marker and go at the next start, or
                // at the next install's first batch. The leader sends the snapshot again later.
                AbortInstall(shard);
                Ack(last, reject: true);
                _stateFullUntil = NoteDiskFull("state.db (snapshot install)", e);
                continue;
            }
            _installs.Remove(shard);
            install.Staging.StoredIn = _clock.Elapsed - install.Staging.CompletedAt;
            install.Staging.LongestIteration = Max(install.LongestIteration, _clock.Elapsed - _iterationBegan);
            long before = g.Core.LastSnapshot.Index;
            g.Core.Step(SnapshotMessage(g, last));
            if (g.Core.LastSnapshot.Index == before)
            {
                // Cannot happen (see above); should it, the store must not stay ahead of the core: back to fresh.
                _options.Log?.Invoke($"node {Id}: shard {shard}: the core refused the snapshot at index {last.Index} it stored; dropped");
                _kv!.DropShard(shard);
                install.Staging.Dispose();
                Ack(last, reject: true);
                continue;
            }
            if (_accepted.Remove(shard, out var older)) older.Dispose();
            _accepted[shard] = install.Staging;
            Ack(last, reject: false);
        }
    }

    /// <summary>Called at the end of each loop iteration: the batched installs under way note its length.</summary>
    private void NoteIterationForInstalls()
    {
        if (_installs.Count == 0) return;
        var length = _clock.Elapsed - _iterationBegan;
        foreach (var install in _installs.Values) install.LongestIteration = Max(install.LongestIteration, length);
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    private void Ack(RaftMessage chunk, bool reject) => _transport!.Send(new RaftMessage
    {
        Type = MessageType.SnapshotAck,
        Group = chunk.Group,
        From = chunk.To, // the replica it was addressed to, hosted here or not: the sender's transfer is keyed by it
        To = chunk.From,
        Term = chunk.Term,
        Context = chunk.Context,
        Reject = reject,
    });

    /// <summary>Carries out a Ready's snapshot: state machine first (durable), then the log.</summary>
    private void InstallSnapshot(GroupRuntime g, SnapshotMetadata snapshot)
    {
        int shard = g.Core.Group;
        if (snapshot.Index == 0)
        {
            // A joining node learned its membership from the leader's first append: record it.
            _logStore!.SaveSnapshot(shard, snapshot, discardLog: false);
            return;
        }
        if (!_accepted.Remove(shard, out var staging) || staging.Index != snapshot.Index || !staging.Completed)
            throw new InvalidOperationException($"Node {Id}: the core installs a snapshot of shard {shard} at {snapshot.Index} that was not received.");
        var storing = _clock.Elapsed;
        using (staging)
        {
            // A batched install stored the rows already (ContinueInstalls); otherwise all of them now, in one transaction.
            if (!staging.Stored)
            {
                _kv!.InstallSnapshot(shard, snapshot.Index, snapshot.Term, staging.Range, staging.Chunks());
                staging.StoredIn = staging.LongestIteration = _clock.Elapsed - storing;
            }
        }
        _logStore!.SaveSnapshot(shard, snapshot, discardLog: true);
        // The figures of a move's copy (Bench's ring scenario reads this line: keep its shape). "The loop held": the
        // longest loop iteration while the rows were stored, during which the node's other groups waited.
        _options.Log?.Invoke(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"node {Id}: shard {shard}: snapshot at index {snapshot.Index} from node {ReplicaIds.NodeOf(staging.Leader)} installed: {staging.Bytes} bytes in {staging.Expected} chunks, streamed in {(staging.CompletedAt - staging.StartedAt).TotalMilliseconds:0} ms, stored in {staging.StoredIn.TotalMilliseconds:0} ms, the loop held at most {staging.LongestIteration.TotalMilliseconds:0} ms{(staging.Stored ? " (batched)" : "")}, the process paused for garbage collection {(GC.GetTotalPauseDuration() - staging.GcPausedBefore).TotalMilliseconds:0} ms since the first chunk, the chunks waited for the loop {staging.Queued.TotalMilliseconds:0} ms in all (longest {staging.QueuedMax.TotalMilliseconds:0} ms)"));
        if (staging.PendingAck is { } last) Ack(last, reject: false); // after the line above: tests read their order
    }

    private void DiscardStagedSnapshots()
    {
        if (!Directory.Exists(SnapshotFolder)) return;
        foreach (var file in Directory.EnumerateFiles(SnapshotFolder, "*.incoming")) File.Delete(file);
    }

    private enum ChunkState { Ready, NotYet, Failed }

    /// <summary>
    /// An outgoing transfer: where it stands, and the task that reads the consistent view and encodes it, at most
    /// <c>window</c> chunks ahead of the loop. The reader belongs to that task, which disposes of it when it ends
    /// (done, or stopped by <see cref="Stop"/>).
    /// </summary>
    private sealed class OutgoingSnapshot
    {
        private readonly System.Threading.Channels.Channel<(byte[] Chunk, uint Crc)> _ready;
        private readonly CancellationTokenSource _stop = new();
        private (byte[] Chunk, uint Crc)? _next;

        public OutgoingSnapshot(ShardSnapshotReader reader, SnapshotMetadata metadata, int to, long term, int chunkBytes, int window, Action wake)
        {
            Metadata = metadata;
            To = to;
            Term = term;
            _ready = System.Threading.Channels.Channel.CreateBounded<(byte[], uint)>(
                new System.Threading.Channels.BoundedChannelOptions(Math.Max(1, window)) { SingleReader = true, SingleWriter = true });
            _ = Task.Run(async () =>
            {
                try
                {
                    uint crc = 0;
                    long began = System.Diagnostics.Stopwatch.GetTimestamp();
                    foreach (var chunk in reader.Chunks(chunkBytes))
                    {
                        _stop.Token.ThrowIfCancellationRequested();
                        crc = Crc32C.Append(crc, chunk);
                        Interlocked.Add(ref _bytes, chunk.Length);
                        long waiting = System.Diagnostics.Stopwatch.GetTimestamp();
                        Interlocked.Add(ref _readTicks, waiting - began);
                        await _ready.Writer.WriteAsync((chunk, crc), _stop.Token).ConfigureAwait(false);
                        wake();
                        began = System.Diagnostics.Stopwatch.GetTimestamp();
                        Interlocked.Add(ref _windowTicks, began - waiting);
                    }
                    _ready.Writer.TryComplete();
                }
                catch (Exception e)
                {
                    _ready.Writer.TryComplete(e is OperationCanceledException ? null : e);
                }
                finally
                {
                    reader.Dispose();
                    wake();
                }
            });
        }

        private long _readTicks;
        private long _windowTicks;
        private long _bytes;
        private readonly List<double> _roundTrips = new();
        private readonly List<long> _sentAt = new();

        /// <summary>Notes chunk <paramref name="sequence"/> leaving (loop thread).</summary>
        public void NoteSent(long sequence) => _sentAt.Add(System.Diagnostics.Stopwatch.GetTimestamp());

        /// <summary>Notes chunk <paramref name="sequence"/>'s acknowledgment (loop thread): its round trip, for the figures.</summary>
        public void NoteAcked(long sequence)
        {
            if (sequence < _sentAt.Count) _roundTrips.Add(System.Diagnostics.Stopwatch.GetElapsedTime(_sentAt[(int)sequence]).TotalMilliseconds);
        }

        /// <summary>Time the reading task waited for room in the window (the chunks ahead of it not yet acknowledged).</summary>
        public TimeSpan WindowWait => System.Diagnostics.Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _windowTicks));

        /// <summary>Acknowledgment round trips (send to ack, per chunk): median and longest, ms.</summary>
        public (double Median, double Max) RoundTrips()
        {
            if (_roundTrips.Count == 0) return (0, 0);
            var sorted = _roundTrips.Order().ToArray();
            return (sorted[sorted.Length / 2], sorted[^1]);
        }

        public SnapshotMetadata Metadata { get; }
        /// <summary>When the transfer began (host clock), for the figures logged when it ends.</summary>
        public TimeSpan StartedAt { get; init; }
        /// <summary>The process's total GC pause time when the transfer began.</summary>
        public TimeSpan GcPausedBefore { get; init; }
        /// <summary>Time the reading task spent reading and encoding rows (not waiting for the window), and the bytes it encoded.</summary>
        public TimeSpan ReadTime => System.Diagnostics.Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _readTicks));
        public long Bytes => Interlocked.Read(ref _bytes);
        public int To { get; }
        public long Term { get; }
        /// <summary>Chunks sent, and acknowledged; chunk k (from 0) carries sequence number k.</summary>
        public long Sent { get; set; }
        public long Acked { get; set; }
        public uint Crc { get; set; }
        public bool SentLast { get; set; }
        /// <summary>The last send or acknowledgment: the transfer is abandoned when none comes for the ack timeout.</summary>
        public TimeSpan LastProgressAt { get; set; }
        /// <summary>Why reading the shard failed (<see cref="ChunkState.Failed"/>).</summary>
        public Exception? Failure { get; private set; }

        /// <summary>
        /// The next chunk, with the CRC of every chunk up to it and whether it is the last (the reader has ended after it:
        /// a chunk is handed out only once the one after it, or the end, is known). The codec yields at least one chunk.
        /// </summary>
        public ChunkState TryTake(out byte[]? chunk, out uint crc, out bool last)
        {
            chunk = null;
            crc = 0;
            last = false;
            if (_next is null && _ready.Reader.TryRead(out var first)) _next = first;
            var completion = _ready.Reader.Completion; // completed once the reader ended and every chunk was taken
            if (_next is { } next)
            {
                if (_ready.Reader.TryRead(out var after))
                {
                    (chunk, crc) = next;
                    _next = after;
                    return ChunkState.Ready;
                }
                if (!completion.IsCompleted) return ChunkState.NotYet;
                if (!completion.IsFaulted)
                {
                    (chunk, crc) = next;
                    _next = null;
                    last = true;
                    return ChunkState.Ready;
                }
            }
            else if (!completion.IsCompleted) return ChunkState.NotYet;
            Failure = completion.Exception?.InnerException ?? new InvalidOperationException("The snapshot reader ended without a chunk.");
            return ChunkState.Failed;
        }

        /// <summary>Ends the reading task (it disposes of the reader). Loop thread.</summary>
        public void Stop()
        {
            _stop.Cancel();
        }
    }

    /// <summary>A fresh replica's snapshot being stored in batches, one received chunk (about 256 KiB of rows) per batch
    /// (see the class summary).</summary>
    private sealed class SnapshotInstall
    {
        private readonly IEnumerator<byte[]> _chunks;
        private byte[]? _next;

        public SnapshotInstall(IncomingSnapshot staging, RaftMessage last)
        {
            Staging = staging;
            Last = last;
            _chunks = staging.Chunks().GetEnumerator();
            _next = _chunks.MoveNext() ? _chunks.Current : null; // a transfer has at least one chunk (an empty shard's is empty)
            RowsDone = _next is null;
        }

        public IncomingSnapshot Staging { get; }
        /// <summary>The transfer's last chunk: the snapshot's metadata, and the chunk acknowledged once installed.</summary>
        public RaftMessage Last { get; }
        public int Batches { get; set; }
        public bool RowsDone { get; private set; }
        public TimeSpan LongestIteration { get; set; }

        /// <summary>The next chunk to store (call only while <see cref="RowsDone"/> is false); the last one sets it.</summary>
        public byte[] NextChunk()
        {
            var chunk = _next!;
            _next = _chunks.MoveNext() ? _chunks.Current : null;
            if (_next is null)
            {
                RowsDone = true;
                _chunks.Dispose();
                Staging.Stored = true;
            }
            return chunk;
        }
    }

    /// <summary>
    /// An incoming transfer staged as length-prefixed chunks: in memory up to <paramref name="memoryLimit"/> bytes, then in
    /// a file (see <see cref="NodeHostOptions.SnapshotStagingMemory"/>). The rows are written once, into state.db, either way.
    /// </summary>
    private sealed class IncomingSnapshot(string path, int leader, long index, long term, TimeSpan startedAt, int memoryLimit) : IDisposable
    {
        /// <summary>The chunks as received while they fit in memory (kept, not copied); null once staged in the file.</summary>
        private List<byte[]>? _chunks = new();
        private FileStream? _file;
        private byte[]? _head; // the first chunk's header: its range, read once the checksum passed (Range)

        public string Path { get; } = path;
        public int Leader { get; } = leader;
        public long Index { get; } = index;
        public long Term { get; } = term;
        public long Expected { get; private set; }
        public uint Crc { get; private set; }
        public bool Completed { get; private set; }
        /// <summary>Chunk bytes received (the rows' encoded size).</summary>
        public long Bytes { get; private set; }
        /// <summary>The host clock at the first chunk and at the last.</summary>
        public TimeSpan StartedAt { get; } = startedAt;
        /// <summary>The process's total GC pause time at the first chunk.</summary>
        public TimeSpan GcPausedBefore { get; } = GC.GetTotalPauseDuration();
        public TimeSpan CompletedAt { get; private set; }
        /// <summary>Its rows are in state.db already (a batched install), and how long storing them took.</summary>
        public bool Stored { get; set; }
        public TimeSpan StoredIn { get; set; }
        /// <summary>The longest loop iteration while its rows were stored.</summary>
        public TimeSpan LongestIteration { get; set; }
        /// <summary>The last chunk of a transfer the core took, acknowledged once the rows are stored (the one-transaction
        /// install; a batched one acknowledges it when it completes).</summary>
        public RaftMessage? PendingAck { get; set; }

        /// <summary>The shard's hash range the snapshot carries (its first chunk; null: none, see KvStore.RecordRange).</summary>
        /// <exception cref="StorageCorruptException">The first chunk is malformed.</exception>
        public (ulong Start, ulong Last)? Range => SnapshotChunkCodec.RangeOf(_head);

        /// <summary>How long the chunks waited between reaching the node and being taken by its loop: in all, and the longest.</summary>
        public TimeSpan Queued { get; private set; }
        public TimeSpan QueuedMax { get; private set; }

        public void NoteQueued(TimeSpan waited)
        {
            Queued += waited;
            if (waited > QueuedMax) QueuedMax = waited;
        }

        public void Append(byte[] chunk)
        {
            _head ??= chunk[..Math.Min(chunk.Length, 64)];
            if (_chunks is not null && Bytes + chunk.Length > memoryLimit)
            {
                _file = new FileStream(Path, FileMode.Create, FileAccess.ReadWrite, FileShare.None);
                foreach (var kept in _chunks) WriteToFile(kept);
                _chunks = null;
            }
            if (_chunks is not null) _chunks.Add(chunk);
            else WriteToFile(chunk);
            Crc = Crc32C.Append(Crc, chunk);
            Bytes += chunk.Length;
            Expected++;
        }

        private void WriteToFile(byte[] chunk)
        {
            Span<byte> length = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(length, chunk.Length);
            _file!.Write(length);
            _file.Write(chunk);
        }

        public void Complete(TimeSpan at)
        {
            _file?.Flush();
            Completed = true;
            CompletedAt = at;
        }

        /// <summary>The staged chunks in order (from the file: one at a time, bounded memory).</summary>
        public IEnumerable<byte[]> Chunks()
        {
            ObjectDisposedException.ThrowIf(_chunks is null && _file is null, this);
            if (_chunks is not null)
            {
                foreach (var chunk in _chunks) yield return chunk;
                yield break;
            }
            _file!.Position = 0;
            var length = new byte[4];
            while (_file.Position < _file.Length)
            {
                _file.ReadExactly(length);
                var chunk = new byte[BinaryPrimitives.ReadInt32LittleEndian(length)];
                _file.ReadExactly(chunk);
                yield return chunk;
            }
        }

        public void Dispose()
        {
            _chunks = null;
            if (_file is null) return;
            _file.Dispose();
            _file = null;
            File.Delete(Path);
        }
    }
}
