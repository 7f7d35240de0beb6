using Replication.Engine.Transport;
using System.Buffers.Binary;
using Replication.Engine.Raft;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// Log compaction and snapshot transfer (Raft paper section 7): on the node loop thread, but for the stream of a
/// transfer's chunks and acknowledgments, which runs beside it (see Sending and Receiving).
///
/// Compaction: once enough applied entries pile up behind a group's last snapshot, the state
/// machine is made durable (one fsync) and the log is compacted to a point some entries below the
/// applied index. The state machine itself is the snapshot: nothing is copied.
///
/// Sending: when a core asks to send a Snapshot message (a follower needs compacted entries), the
/// host opens a consistent read of that shard at its current applied index A (A is at least the
/// compacted index, so it serves just as well and needs no stored copy) and streams it in chunks,
/// up to <see cref="NodeHostOptions.SnapshotWindow"/> of them read and not yet acknowledged, each further one read on an
/// acknowledgment (stop-and-wait made one round trip through both nodes' loops per chunk the
/// ceiling: 1-10 MB/s measured). The stream runs beside both nodes' loops (<see cref="OutgoingSnapshot"/>): a thread of
/// the transfer's own reads and encodes the rows (and the CRC) and hands each chunk to the transport as the window opens;
/// acknowledgments are taken on the transport's thread. Done on the loop thread, reading a 33 MB shard held the sender's
/// loop for about a second, and its other shards lost their leaders (bench, ring scenario); passed through the loops,
/// every chunk and acknowledgment waited behind the iterations' fsyncs and other groups (ring bench: 0.6-1.3 s in all per
/// 33 MB on the receiver). The loop starts a transfer and ends it: it is abandoned (ReportSnapshot false, Raft retries later)
/// if an acknowledgment is late, refused or the node stops leading. Chunks travel in order on the
/// peer's snapshot lane, a connection of their own (TcpTransport.Send; the acknowledgments come back on the Raft
/// connection), and the receiver takes them only in sequence: a chunk lost with a broken
/// connection makes the next one refused, which ends the transfer. The last chunk carries the
/// metadata at A and a CRC-32C over all chunks; the first carries the shard's hash range when it took part in a split
/// (SnapshotChunkCodec), which the install records with the rows (KvStore.RecordRange). A chunk is one copy of the rows
/// between SQLite and the socket: written by the reader into a buffer of the stream's pool (SnapshotChunkBuffer), carried
/// as RaftMessage.Chunk (on the wire the message's one entry, as before), copied into the lane's frame and returned to the
/// pool by the lane (PeerSender); the receiver's transport hands the chunk over as a slice of its frame buffer, and the
/// staging copies it once. Each chunk was a new 256 KiB array on the sender and another on the receiver (large-object
/// heap): per 33 MB, the sender's reading and encoding took 207-277 ms against 46-48 ms now, and the lane's frame encode,
/// check and decode 148-203 ms against 5-8 ms (bench --only snapshot-parts, load 12).
///
/// Receiving: a transfer's first chunk goes through the loop, which checks the replica it is for and registers the
/// transfer before acknowledging it (the sender sends nothing more until then); the later chunks are staged (in memory,
/// past 64 MiB in a file) and acknowledged on the transport's thread. On the last one the CRC is checked, and only then
/// the loop takes the transfer. A node that crashes mid-transfer loses only what was staged (a staging file is deleted
/// at start-up).
///
/// Installing without stalling the node: storing a snapshot's rows takes a while (8 MB: 0.5-2.5 s measured), and done
/// in one go on the loop thread it held every other group of the node (heartbeats included) for that long: elections
/// and write stalls on every shard the node holds, at each move. So the rows are stored first, one received chunk
/// (about 256 KiB) per transaction, for at most <see cref="InstallSlice"/> per loop iteration, while the replica's group
/// is paused (no ticks, no messages: its core stays exactly as it was when the last chunk came), and the Snapshot message
/// is stepped into the core only once they are all in and durable; the last chunk is acknowledged once the next Ready
/// has restarted the log at the snapshot (so the leader holds its log from the snapshot's index until then). Only a
/// snapshot the core will restore from is stored (RaftNode.WouldRestore); one it would not is stepped in at once, and
/// the core answers with what it has. While rows are stored, state.db's WAL is checkpointed by a thread of its own
/// (KvStore.PauseAutoCheckpoint), and the install's durable commit waits, off the loop, for a checkpoint that has synced
/// the rows: SQLite's auto-checkpoint put a copy and fsync of about 8 MB inside one of the slices every few chunks, and
/// the durable commit an fsync of every page written since (bench --only snapshot-parts, 33 MB at load 13-25: the
/// per-chunk transactions' p99 37-307 ms before, 9-54 ms after). A snapshot of at most <see cref="SmallInstallBytes"/>
/// goes through the same steps at once, in the iteration that takes it, and commits without waiting for the checkpoint:
/// its rows are a few slices' work, and its durable commits' fsyncs are the rest (a staged one's iteration on a node
/// that had just restarted: 93-229 ms, against 36-223 ms for the longest iteration of the sliced install before).
/// <list type="bullet">
/// <item>A fresh replica (nothing in its log, nothing applied: a move's new learner) writes the rows into the shard. The
/// first batch writes a marker in state.db that the last one removes; a crash or a failed batch in between leaves the
/// marker, and the node's next start discards the partial rows (KvStore.DiscardPartialInstalls): the replica is fresh
/// again and is sent the snapshot again.</item>
/// <item>A replica with data of its own (behind a compacted log, or restarted after its log was compacted elsewhere)
/// must keep its old state, which its log continues, until the new one is complete: it stages the rows beside its own,
/// then swaps them in by steps of <see cref="SwapKeys"/> keys after a durable commit point (KvStore.StagedInstall.cs). A
/// crash before that point leaves the old state; after it, the next start completes the swap. Installed in one
/// transaction, it held its node's loop 0.9-1.0 s for 33 MB (ring bench, node 2 restarting).</item>
/// <item>An image (a sender that keeps each shard in a file of its own, <see cref="StoreLayout.FilePerShard"/>, sends the
/// shard's file as it lies: ShardSnapshotReader.OpenImage) is no rows: its chunks go straight into a file as they arrive
/// (IncomingSnapshot, ShardImageWriter), which the last one completes off the loop (WAL recovery, quick_check,
/// checkpoint, fsync). The loop then puts that file in place of the replica's state in one step (KvStore.InstallImage:
/// a rename over the shard's file, or, on a node of one state.db, an import of its rows), fresh replica or not, and the
/// core takes the snapshot as above. A crash before the rename leaves the old file and a leftover the next start deletes.
/// The image must hold exactly the state the snapshot names: the sender opens it on its loop, between applies.</item>
/// </list>
/// </summary>
internal sealed partial class NodeHost
{
    /// <summary>Outgoing transfers by shard and receiving replica. Added and removed on the loop; the transport's threads look
    /// transfers up to hand them their acknowledgments.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(int Shard, int To), OutgoingSnapshot> _outgoing = new();
    /// <summary>Transfers being received, by shard. Added (at a transfer's first chunk) and abandoned on the loop; the transport's
    /// threads append the later chunks and take a completed one out (under the staging's lock).</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<int, IncomingSnapshot> _incoming = new();
    /// <summary>Per shard: the received snapshot the core accepted, waiting for its Ready.Snapshot to be installed.</summary>
    private readonly Dictionary<int, IncomingSnapshot> _accepted = new();
    private long _incomingSeq;
    /// <summary>Per shard: a fresh replica's snapshot being stored in batches; its group is paused meanwhile.</summary>
    private readonly Dictionary<int, SnapshotInstall> _installs = new();
    /// <summary>When the current loop iteration began (loop thread only): a batched install reports the longest iteration.</summary>
    private TimeSpan _iterationBegan;

    /// <summary>Loop time a batched install may use per iteration before the node turns to its other work.</summary>
    private static readonly TimeSpan InstallSlice = TimeSpan.FromMilliseconds(10);

    /// <summary>A snapshot of at most this many bytes is stored at once when it arrives, in the loop iteration that takes it,
    /// not in rested slices (<see cref="OnSnapshotReceived"/>): about four received chunks of rows.</summary>
    internal const long SmallInstallBytes = 1 << 20;

    /// <summary>Snapshots stored at once (<see cref="SmallInstallBytes"/>) since the host started; tests read it.</summary>
    internal int SmallInstalls { get; private set; }

    /// <summary>
    /// After each install slice the loop rests from installing for as long as the slice took (it still takes every other
    /// work at once: a message, a request or a tick wakes it): an install uses at most about half of a core. Without the
    /// rest the loop ran slice after slice, a whole core for the 0.3-0.8 s of storing 33 MB, and on this 2-core machine
    /// the other nodes' writes waited for CPU (ring bench: write p99 during a move's storing 86-118 ms against 18 idle).
    /// The cost is a longer store; CockroachDB rate-limits its snapshots for the same reason.
    /// </summary>
    private TimeSpan _nextInstallSlice;

    /// <summary>How long the loop may sleep before the next install slice is due: zero or less when one is due, TimeSpan.MaxValue
    /// without installs or drops.</summary>
    private TimeSpan UntilInstallSlice => _installs.Count == 0 && _drops.Count == 0 ? TimeSpan.MaxValue : _nextInstallSlice - _clock.Elapsed;

    /// <summary>
    /// Shards whose replica here was dropped and whose rows are still being deleted (KvStore.BeginDropShard, from
    /// ReplaceGroupDataAsync). They go in the install slices' time, after the installs, <see cref="DropRows"/> per
    /// transaction, with the same rest: the copy a move makes and the rows it leaves behind cost the node's other shards
    /// the same bounded slices. Loop thread only.
    /// </summary>
    private readonly Dictionary<int, (TimeSpan Began, int Steps)> _drops = new();

    /// <summary>Rows deleted per transaction of a drop: about 256 KiB of 1,000-byte values, like an install's chunk.</summary>
    private const int DropRows = 256;

    /// <summary>Keys per step of a staged install's swap (KvStore.SwapStagedRows): a few milliseconds of rows of 1 KB.</summary>
    private const int SwapKeys = 256;

    private string SnapshotFolder => Path.Combine(_options.DataPath, "snapshots");

    private void MaybeCompact()
    {
        ReleaseSnapshotHolds();
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
    /// this node is sending or has just delivered (<see cref="_snapshotHolds"/>).
    /// </summary>
    private long CompactionPoint(GroupRuntime g) =>
        Math.Min(g.Core.Applied - _options.SnapshotCatchUpEntries, _snapshotHolds.Floor(g.Core.Group));

    /// <summary>Snapshots being sent or just delivered, which the log keeps until their receivers' logs reach them (see the type).</summary>
    private readonly SnapshotHolds _snapshotHolds = new();

    /// <summary>How long a delivered snapshot is kept from compaction at most (<see cref="_snapshotHolds"/>): a few election timeouts.</summary>
    private TimeSpan DeliveredHold => _options.TickInterval * (_options.ElectionTicks * 4);

    /// <summary>Ends the holds of <see cref="_snapshotHolds"/> no longer needed: the replica's log reached the snapshot, or this
    /// node no longer leads the shard (or a delivered one's hold expired). Before each compaction check.</summary>
    private void ReleaseSnapshotHolds() => _snapshotHolds.Release(_clock.Elapsed, (shard, to, index) =>
        !_groups.TryGetValue(shard, out var g) || g.Core.Role != RaftRole.Leader
        || (g.Core.MatchIndexes().TryGetValue(to, out long match) && match >= index));

    /// <summary>
    /// The chunk size of an image (a shard's file sent as it lies): four times a row chunk's, at most the largest chunk the
    /// stream's pool keeps (SnapshotChunkBuffer.MaxPooledBytes), so 1 MiB at the default. A row chunk is one transaction on
    /// the receiver's loop, which bounds it; an image chunk is bytes appended to a file off the loop, and each one costs a
    /// frame, a wake-up of both lanes and an acknowledgment's round trip. Ring bench (--store-layout shard, one run each,
    /// 2026-12-02): a 41 MB image streamed at 136-138 MB/s in 256 KiB chunks (0.22 of the raw copy), at 229-280 MB/s in
    /// 1 MiB chunks (0.32-0.39), and the writes' p99 during the moves was 1.47-1.77x idle against 1.57-2.01x.
    /// </summary>
    internal static int ImageChunkBytes(int rowChunkBytes) => (int)Math.Min((long)rowChunkBytes * 4, SnapshotChunkBuffer.MaxPooledBytes);

    private void StartSnapshotTransfer(GroupRuntime g, RaftMessage request)
    {
        int shard = g.Core.Group;
        AbortSnapshotTransfer((shard, request.To));
        long openedAt = System.Diagnostics.Stopwatch.GetTimestamp();
        var reader = _kv!.OpenSnapshot(shard);
        var opening = System.Diagnostics.Stopwatch.GetElapsedTime(openedAt);
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
        var transfer = new OutgoingSnapshot(shard, metadata, g.Core.Id, request.To, request.Term, _options.SnapshotWindow, _transport!.Send, () => _wake.Set())
        {
            StartedAt = _clock.Elapsed,
            GcPausedBefore = GC.GetTotalPauseDuration(),
        };
        _outgoing[(shard, request.To)] = transfer;
        _snapshotHolds.Hold(shard, request.To, metadata.Index, TimeSpan.MaxValue); // until the transfer ends (FinishTransfer)
        _options.Log?.Invoke($"node {Id}: shard {shard}: sending a snapshot at index {reader.Index} to node {ReplicaIds.NodeOf(request.To)} (opened on the loop in {opening.TotalMilliseconds.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture)} ms)");
        transfer.Start(reader, reader.IsImage ? ImageChunkBytes(_options.SnapshotChunkBytes) : _options.SnapshotChunkBytes);
    }

    /// <summary>Every loop iteration: ends the transfers whose stream has ended (acknowledged in full, refused, or its
    /// reading failed), which the core hears of through ReportSnapshot.</summary>
    private void PumpSnapshotTransfers()
    {
        if (_outgoing.IsEmpty) return;
        foreach (var (key, t) in _outgoing.ToArray())
        {
            if (t.Outcome is not { } succeeded) continue;
            if (t.Failure is { } failure)
                _options.Log?.Invoke($"node {Id}: shard {key.Shard}: reading the snapshot for node {ReplicaIds.NodeOf(t.To)} failed: {failure.Message}");
            FinishTransfer(key.Shard, t, succeeded);
        }
    }

    /// <summary>An acknowledgment from a receiving replica (the transport's thread): the transfer's window moves on.</summary>
    private void OnSnapshotAck(RaftMessage ack)
    {
        if (_outgoing.TryGetValue((ack.Group, ack.From), out var t)) t.OnAck(ack);
    }

    private void FinishTransfer(int shard, OutgoingSnapshot t, bool succeeded)
    {
        if (!_outgoing.TryRemove(new KeyValuePair<(int, int), OutgoingSnapshot>((shard, t.To), t))) return;
        t.Stop();
        // The sender's side of a copy's figures (the receiver logs the rest when it installs): where a slow stream spends its time.
        if (succeeded)
        {
            var (median, longest) = t.RoundTrips();
            _options.Log?.Invoke(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"node {Id}: shard {shard}: snapshot at index {t.Metadata.Index} sent to node {ReplicaIds.NodeOf(t.To)}: {t.Bytes} bytes in {t.Sent} chunks in {(_clock.Elapsed - t.StartedAt).TotalMilliseconds:0} ms, reading and encoding {t.ReadTime.TotalMilliseconds:0} ms, waiting for the window {t.WindowWait.TotalMilliseconds:0} ms, acknowledged in {median:0} ms (median; longest {longest:0} ms), the process paused for garbage collection {(GC.GetTotalPauseDuration() - t.GcPausedBefore).TotalMilliseconds:0} ms meanwhile"));
        }
        if (succeeded) _snapshotHolds.Hold(shard, t.To, t.Metadata.Index, _clock.Elapsed + DeliveredHold);
        else _snapshotHolds.Drop(shard, t.To);
        if (_groups.TryGetValue(shard, out var g)) g.Core.ReportSnapshot(t.To, succeeded, t.Metadata.Index);
    }

    private void ExpireSnapshotTransfers()
    {
        if (_outgoing.IsEmpty) return;
        foreach (var (key, t) in _outgoing.ToArray())
            if (t.SinceProgress > _options.SnapshotAckTimeout) FinishTransfer(key.Shard, t, succeeded: false);
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
        if (!_installs.Remove(shard, out var install)) return;
        install.Staging.Dispose();
        // A staged install past its commit point is completed, as a restart would: the shard's rows are then the snapshot's,
        // never a mix of old and new ones.
        if (install.Swapping) while (!_storage!.SwapStagedRows(shard, int.MaxValue)) { }
    }

    /// <summary>Abandons the transfer <paramref name="shard"/> is receiving, if any (loop thread).</summary>
    private void AbortIncoming(int shard)
    {
        if (_incoming.TryRemove(shard, out var staging)) staging.Dispose();
    }

    /// <summary>True while <paramref name="shard"/>'s replica stores a snapshot in batches: its core is paused.</summary>
    private bool IsInstalling(int shard) => _installs.Count > 0 && _installs.ContainsKey(shard);

    /// <summary>True when the replica <paramref name="m"/> is addressed to is hosted here and may take a snapshot now.</summary>
    private bool MayReceive(RaftMessage m, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out GroupRuntime? g) =>
        _groups.TryGetValue(m.Group, out g) && m.To == g.Core.Id && m.Term >= g.Core.Term && !IsInstalling(m.Group);

    /// <summary>
    /// A transfer's first chunk (loop thread): the replica it is addressed to is checked here, on the loop that owns it. A
    /// snapshot for a replica this node does not host (dropped: its tombstone; or not yet) is refused, and creates none; so
    /// is one while the replica stores a snapshot (a new leader's transfer: it tries again after the install). The staging
    /// is registered before the chunk is acknowledged, and the sender sends the next chunks only on that acknowledgment,
    /// so every later chunk (<see cref="OnLaterSnapshotChunk"/>, off the loop) finds it.
    /// </summary>
    private void OnSnapshotChunk(RaftMessage m)
    {
        if (m.Context != 0 || !HasOneChunk(m) || !MayReceive(m, out _))
        {
            Ack(m, reject: true);
            return;
        }
        AbortIncoming(m.Group);
        Directory.CreateDirectory(SnapshotFolder);
        // One file per transfer: an accepted one waiting to be installed keeps its own (see below).
        var staging = new IncomingSnapshot(Path.Combine(SnapshotFolder, $"shard-{m.Group}-{++_incomingSeq}.incoming"), m, _clock.Elapsed, _options.SnapshotStagingMemory);
        try
        {
            staging.Append(ChunkOf(m).Span);
        }
        catch (StorageCorruptException e)
        {
            // A malformed image (its header failed its checksum): this transfer fails, the node goes on.
            _options.Log?.Invoke($"node {Id}: snapshot of shard {m.Group} from node {ReplicaIds.NodeOf(m.From)} refused: {e.Message}");
            staging.Dispose();
            Ack(m, reject: true);
            return;
        }
        catch
        {
            staging.Dispose(); // its file, if it has one (a full disk: NodeHost.DiskFull.cs answers the chunk)
            throw;
        }
        if (m.Commit == 1)
        {
            // The whole snapshot in one chunk.
            if (CompleteStaging(staging, m)) OnSnapshotReceived(new ReceivedSnapshot(m, staging));
            return;
        }
        _incoming[m.Group] = staging;
        Ack(m, reject: false);
    }

    /// <summary>
    /// A transfer's later chunk, on the transport's thread that read it: staged (memory or file) and acknowledged without
    /// a turn of the loop, so the stream's window moves at the pace of the network and the staging, not at the pace of the
    /// loop's iterations (whose fsyncs and other groups each chunk used to wait behind, on both nodes). A chunk that does not
    /// continue the staged transfer is refused, which ends that transfer. The last chunk, once the checksum over all of them
    /// passed, goes to the loop (<see cref="OnSnapshotReceived"/>).
    /// </summary>
    private void OnLaterSnapshotChunk(RaftMessage m)
    {
        if (!_incoming.TryGetValue(m.Group, out var staging))
        {
            Ack(m, reject: true); // a chunk of a transfer we do not have (lost, restarted, superseded, or refused at its start)
            return;
        }
        lock (staging)
        {
            if (!staging.Continues(m))
            {
                Ack(m, reject: true);
                return;
            }
            try
            {
                staging.Append(ChunkOf(m).Span);
            }
            catch (StorageCorruptException)
            {
                // A malformed image (bytes past its end, a bad header): this transfer fails, the node goes on.
                _incoming.TryRemove(new KeyValuePair<int, IncomingSnapshot>(m.Group, staging));
                staging.Dispose();
                Ack(m, reject: true);
                return;
            }
            catch (IOException e) when (StorageErrors.IsDiskFull(e))
            {
                _incoming.TryRemove(new KeyValuePair<int, IncomingSnapshot>(m.Group, staging));
                staging.Dispose();
                Ack(m, reject: true);
                PostToLoop(new LoopWork<bool>(() =>
                {
                    _stateFullUntil = NoteDiskFull("snapshot staging file", e); // NodeHost.DiskFull.cs
                    return true;
                }));
                return;
            }
            if (m.Commit != 1)
            {
                Ack(m, reject: false);
                return;
            }
            _incoming.TryRemove(new KeyValuePair<int, IncomingSnapshot>(m.Group, staging));
            if (!CompleteStaging(staging, m)) return;
            staging.HandedOverAt = System.Diagnostics.Stopwatch.GetTimestamp();
        }
        PostToLoop(new ReceivedSnapshot(m with { Chunk = default }, staging)); // its bytes are staged; the borrowed slice is not kept
    }

    /// <summary>
    /// A snapshot chunk as the transport hands it over (its receiving thread, NodeHost.OnMessage). Its bytes may be borrowed
    /// from the transport's frame buffer (<see cref="RaftMessage.Chunk"/>), valid only until this returns: a later chunk is
    /// staged here (<see cref="OnLaterSnapshotChunk"/>, which copies its bytes into the staging file), and a transfer's first
    /// chunk, which the loop takes after this returned, is given to it with a copy of its bytes.
    /// </summary>
    private void OnSnapshotChunkArrived(RaftMessage m)
    {
        if (m.Context > 0)
        {
            OnLaterSnapshotChunk(m);
            return;
        }
        _inbox.Enqueue(m.Chunk.IsEmpty ? m : m with { Chunk = m.Chunk.ToArray(), ChunkLease = null });
        _wake.Set();
    }

    /// <summary>A chunk message carries exactly one chunk: as its one entry, or as <see cref="RaftMessage.Chunk"/>.</summary>
    private static bool HasOneChunk(RaftMessage m) => m.Entries.Count == 1 ? m.Chunk.IsEmpty : m.Entries.Count == 0 && !m.Chunk.IsEmpty;

    /// <summary>The bytes of the one chunk <paramref name="m"/> carries (<see cref="HasOneChunk"/>).</summary>
    private static ReadOnlyMemory<byte> ChunkOf(RaftMessage m) => m.Entries.Count == 1 ? m.Entries[0].Data : m.Chunk;

    /// <summary>Ends a staged transfer at its last chunk <paramref name="last"/>: true when the checksum over every chunk passed;
    /// otherwise the staging is discarded and the chunk refused.</summary>
    private bool CompleteStaging(IncomingSnapshot staging, RaftMessage last)
    {
        staging.Complete(_clock.Elapsed);
        if (staging.Crc != (uint)last.RejectHint)
        {
            _options.Log?.Invoke($"node {Id}: snapshot of shard {last.Group} from node {last.From} failed its checksum; discarded");
            staging.Dispose();
            Ack(last, reject: true);
            return false;
        }
        try
        {
            staging.CompleteImage(); // an image: recovered, checked and made durable in its file (ShardImageWriter.Complete)
            return true;
        }
        catch (Exception e) when (e is StorageCorruptException or IOException or Microsoft.Data.Sqlite.SqliteException)
        {
            _options.Log?.Invoke($"node {Id}: snapshot image of shard {last.Group} from node {ReplicaIds.NodeOf(last.From)} could not be stored: {e.Message}; discarded");
            staging.Dispose();
            Ack(last, reject: true);
            return false;
        }
    }

    /// <summary>Hands work to the loop from another thread; dropped once the node stops (as the transfer it belongs to).</summary>
    private void PostToLoop(object work)
    {
        if (_stopping) return;
        _inbox.Enqueue(work);
        _wake.Set();
    }

    /// <summary>A transfer received in full and verified, for the loop.</summary>
    private sealed record ReceivedSnapshot(RaftMessage Last, IncomingSnapshot Staging);

    /// <summary>
    /// A verified snapshot (loop thread): checked again against the replica (it may have been dropped, moved to a newer
    /// term or begun an install meanwhile), then handed to the core, or stored first in batches by a fresh replica.
    /// </summary>
    private void OnSnapshotReceived(ReceivedSnapshot received)
    {
        var (m, staging) = received;
        if (staging.HandedOverAt != 0) staging.LoopWait = System.Diagnostics.Stopwatch.GetElapsedTime(staging.HandedOverAt);
        if (!MayReceive(m, out var g))
        {
            staging.Dispose();
            Ack(m, reject: true);
            return;
        }
        bool fresh = IsFresh(g);
        if (staging.ImagePath is not null && m.Index > 0 && (fresh || g.Core.WouldRestore(m.Index, m.LogTerm)))
        {
            InstallImage(g, m, staging, fresh);
            return;
        }
        if (m.Index > 0 && (fresh || g.Core.WouldRestore(m.Index, m.LogTerm)))
        {
            // Stored in batches first, the group paused; the core hears of it once it is all in (ContinueInstalls). A replica
            // with data of its own stages the rows beside its own and swaps them in by steps (KvStore.StagedInstall.cs). The
            // core takes the snapshot then: it checked the same now, and it hears nothing meanwhile.
            var install = new SnapshotInstall(staging, m, replacing: !fresh);
            _installs[m.Group] = install;
            if (install.Small)
            {
                // Stored now, in this iteration (its rows, commit point and swap, with their fsyncs: see the class summary).
                // Spread over rested slices behind a checkpoint they took 77-950 ms (a restarted node's 280 KB snapshots,
                // beside a 33 MB one: the node could lead none of those shards meanwhile). Bounded: rows and commit point, then
                // the swap; a step a full disk stopped is taken up again by the slices.
                for (int step = 0; step < 2 && _installs.ContainsKey(m.Group); step++) ContinueInstall(m.Group, install, TimeSpan.MaxValue);
                if (!_installs.ContainsKey(m.Group)) SmallInstalls++;
            }
            return;
        }
        // Not news to the core (its log holds the snapshot's last entry, or it has committed past it): stepped in, it answers
        // the leader with what it has.
        g.Core.Step(SnapshotMessage(g, m));
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
        if (_installs.Count == 0 && _drops.Count == 0)
        {
            _kv!.ResumeAutoCheckpoint(); // no-op unless an install or a drop just ended
            return;
        }
        if (_clock.Elapsed < _nextInstallSlice) return; // resting from the last slice
        // The WAL is checkpointed beside the loop while rows are stored (KvStore.PauseAutoCheckpoint): left to the writer,
        // a checkpoint (copy and fsync of about 8 MB) fell inside one of the slice's transactions every few chunks.
        _kv!.PauseAutoCheckpoint();
        var began = _clock.Elapsed;
        try
        {
            ContinueInstallsSlice();
            ContinueDropsSlice(began + InstallSlice);
        }
        finally
        {
            _kv!.NudgeCheckpoint();
            var ended = _clock.Elapsed;
            _nextInstallSlice = ended + (ended - began); // a rest as long as the slice
        }
    }

    /// <summary>The drops' share of a turn of <see cref="ContinueInstalls"/>: what the installs left of the slice.</summary>
    private void ContinueDropsSlice(TimeSpan until)
    {
        if (_stateFullUntil is { } full && _clock.Elapsed < full) return; // DiskFullTick probes the disk meanwhile
        foreach (var (shard, (began, steps)) in _drops.ToArray())
        {
            if (_clock.Elapsed >= until) return;
            try
            {
                bool done = false;
                int taken = 0;
                while (!done && _clock.Elapsed < until)
                {
                    done = _kv!.DropShardRows(shard, DropRows);
                    taken++;
                }
                if (!done)
                {
                    _drops[shard] = (began, steps + taken);
                    continue;
                }
                _drops.Remove(shard);
                _options.Log?.Invoke(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"node {Id}: shard {shard}: the rows of its dropped replica are deleted, in {steps + taken} step{(steps + taken == 1 ? "" : "s")} over {(_clock.Elapsed - began).TotalMilliseconds:0} ms"));
            }
            catch (Exception e) when (StorageErrors.IsDiskFull(e))
            {
                // A delete writes pages to the WAL too. Nothing of the failed step was stored; the next slice tries again.
                _stateFullUntil = NoteDiskFull("state.db (dropping a replica's rows)", e);
                return;
            }
        }
    }

    /// <summary>One turn of <see cref="ContinueInstalls"/> over the installs under way.</summary>
    private void ContinueInstallsSlice()
    {
        var until = _clock.Elapsed + InstallSlice;
        foreach (var (shard, install) in _installs.ToArray())
        {
            if (_clock.Elapsed >= until) break;
            ContinueInstall(shard, install, until);
        }
    }

    /// <summary>
    /// Takes one install (see <see cref="ContinueInstalls"/>) as far as it goes before <paramref name="until"/>: its next
    /// batches, its commit point or its next swap steps, and its completion once its rows are all in. A small one
    /// (<see cref="SnapshotInstall.Small"/>) does not wait for the checkpointing thread before its durable commits.
    /// </summary>
    private void ContinueInstall(int shard, SnapshotInstall install, TimeSpan until)
    {
        var g = _groups[shard]; // a group leaves _groups only with its install (AbortInstall)
        var last = install.Last;
        if (install.Swapping)
        {
            // Past its commit point: only going on completes it (a crash rolls it forward at the next start).
            if (_clock.Elapsed < install.RetryAt) return;
            try
            {
                bool swapped = false;
                while (!swapped && _clock.Elapsed < until) swapped = _storage!.SwapStagedRows(shard, SwapKeys);
                if (!swapped) return;
            }
            catch (Exception e) when (StorageErrors.IsDiskFull(e))
            {
                var retryAt = NoteDiskFull("state.db (snapshot install)", e);
                _stateFullUntil = install.RetryAt = retryAt;
                return;
            }
        }
        else
        {
            try
            {
                while (!install.RowsDone && _clock.Elapsed < until)
                {
                    var chunk = install.NextChunk();
                    var began = _clock.Elapsed;
                    if (install.Replacing) _storage!.StageSnapshotRows(shard, last.Index, last.LogTerm, chunk, first: install.Batches == 0);
                    else _storage!.InstallSnapshotRows(shard, last.Index, last.LogTerm, chunk, first: install.Batches == 0);
                    install.Staging.LongestTransaction = Max(install.Staging.LongestTransaction, _clock.Elapsed - began);
                    install.Batches++;
                }
                if (!install.RowsDone) return;
                // The durable commit below fsyncs the WAL: first the checkpointing thread syncs the rows' pages, beside
                // the loop, which meanwhile goes on with its other work (waiting at most a millisecond per turn). A small
                // install's rows are a small part of what that fsync syncs: it commits at once.
                if (!install.Small)
                {
                    install.SyncTicket ??= _kv!.RequestCheckpoint();
                    if (!_kv!.CheckpointDone(install.SyncTicket.Value, TimeSpan.FromMilliseconds(1))) return;
                }
                if (install.Replacing)
                {
                    _storage!.BeginStagedSwap(shard, last.Index, last.LogTerm, install.Staging.Range);
                    install.Swapping = true;
                    return; // the swap from the next iteration on
                }
                _storage!.CompleteSnapshotInstall(shard, last.Index, last.LogTerm, install.Staging.Range);
            }
            catch (Exception e) when (StorageErrors.IsDiskFull(e))
            {
                // Nothing of the failed batch was stored; the partial rows keep their marker and go at the next start, or
                // at the next install's first batch. The leader sends the snapshot again later.
                AbortInstall(shard);
                Ack(last, reject: true);
                _stateFullUntil = NoteDiskFull("state.db (snapshot install)", e);
                return;
            }
        }
        _installs.Remove(shard);
        install.Staging.Swapped = install.Replacing;
        install.Staging.StoredIn = _clock.Elapsed - install.Staging.CompletedAt;
        install.Staging.LongestIteration = Max(install.LongestIteration, _clock.Elapsed - _iterationBegan);
        StepStored(g, install.Staging, last, install.Replacing);
    }

    /// <summary>
    /// A snapshot stored in full (its rows, or its image in place: <see cref="InstallImage"/>) goes to the core, which takes it
    /// (it checked the same when the transfer was received, and heard nothing of the shard since); the last chunk is
    /// acknowledged once the Ready's snapshot has restarted the log there (<see cref="InstallSnapshot"/>).
    /// </summary>
    private void StepStored(GroupRuntime g, IncomingSnapshot staging, RaftMessage last, bool replacing)
    {
        int shard = g.Core.Group;
        long before = g.Core.LastSnapshot.Index;
        g.Core.Step(SnapshotMessage(g, last));
        if (g.Core.LastSnapshot.Index == before)
        {
            // Cannot happen (see above). Should it, the store must not stay ahead of the core. A replica that had data
            // now holds the snapshot's rows where its log continues older ones: the node stops, and its next start takes
            // the stored state as it is (as after a crash right after the install).
            if (replacing)
                throw new InvalidOperationException($"Node {Id}: the core of shard {shard} refused the snapshot at index {last.Index} swapped in over its data.");
            // A fresh replica goes back to fresh.
            _options.Log?.Invoke($"node {Id}: shard {shard}: the core refused the snapshot at index {last.Index} it stored; dropped");
            _kv!.DropShard(shard);
            staging.Dispose();
            Ack(last, reject: true);
            return;
        }
        if (_accepted.Remove(shard, out var older)) older.Dispose();
        _accepted[shard] = staging;
        staging.PendingAck = last; // once the Ready's snapshot has restarted the log there (InstallSnapshot)
    }

    /// <summary>
    /// A verified snapshot that is an image of the sender's file (a shard kept in a file of its own; its transfer was written
    /// into a file as it arrived and checked there: IncomingSnapshot), for a replica that takes it: put in place of the
    /// replica's state at once, in this iteration (a rename, with the layout of a file per shard: KvStore.InstallImage), then
    /// handed to the core. No rows are inserted, so nothing is spread over slices, and the group need not pause.
    /// </summary>
    private void InstallImage(GroupRuntime g, RaftMessage last, IncomingSnapshot staging, bool fresh)
    {
        int shard = g.Core.Group;
        try
        {
            _kv!.InstallImage(shard, staging.ImagePath!, last.Index, last.LogTerm);
        }
        catch (Exception e) when (StorageErrors.IsDiskFull(e))
        {
            staging.Dispose();
            Ack(last, reject: true); // the leader sends it again later
            _stateFullUntil = NoteDiskFull("state (snapshot image)", e);
            return;
        }
        catch (StorageCorruptException e)
        {
            _options.Log?.Invoke($"node {Id}: shard {shard}: the snapshot image from node {ReplicaIds.NodeOf(last.From)} was refused: {e.Message}");
            staging.Dispose();
            Ack(last, reject: true);
            return;
        }
        staging.Stored = true;
        staging.Swapped = !fresh;
        staging.StoredIn = _clock.Elapsed - staging.CompletedAt;
        staging.LongestIteration = _clock.Elapsed - _iterationBegan;
        StepStored(g, staging, last, replacing: !fresh);
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
        // The rows are stored already (ContinueInstalls): the core hears of a snapshot only once they are.
        if (!_accepted.Remove(shard, out var staging) || staging.Index != snapshot.Index || !staging.Completed || !staging.Stored)
            throw new InvalidOperationException($"Node {Id}: the core installs a snapshot of shard {shard} at {snapshot.Index} that was not received and stored.");
        staging.Dispose();
        _logStore!.SaveSnapshot(shard, snapshot, discardLog: true);
        // The figures of a move's copy (Bench's ring scenario reads this line: keep its shape). "The loop held": the
        // longest loop iteration while the rows were stored, during which the node's other groups waited.
        _options.Log?.Invoke(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"node {Id}: shard {shard}: snapshot at index {snapshot.Index} from node {ReplicaIds.NodeOf(staging.Leader)} installed: {staging.Bytes} bytes in {staging.Expected} chunks, streamed in {(staging.CompletedAt - staging.StartedAt).TotalMilliseconds:0} ms, stored in {staging.StoredIn.TotalMilliseconds:0} ms, the loop held at most {staging.LongestIteration.TotalMilliseconds:0} ms (its longest transaction of rows {staging.LongestTransaction.TotalMilliseconds:0.0} ms){(staging.ImagePath is not null ? (staging.Swapped ? " (image, in place of the old file)" : " (image)") : staging.Swapped ? " (staged and swapped)" : " (batched)")}, the process paused for garbage collection {(GC.GetTotalPauseDuration() - staging.GcPausedBefore).TotalMilliseconds:0} ms since the first chunk, the last chunk waited {staging.LoopWait.TotalMilliseconds:0} ms for the loop"));
        if (staging.PendingAck is { } last) Ack(last, reject: false); // after the line above: tests read their order
    }

    private void DiscardStagedSnapshots()
    {
        if (!Directory.Exists(SnapshotFolder)) return;
        foreach (var file in Directory.EnumerateFiles(SnapshotFolder, "*.incoming*")) File.Delete(file); // chunks, or an image (and its WAL)
    }

    /// <summary>
    /// An outgoing transfer's stream, beside the loop: a thread of its own reads the consistent view and encodes each chunk
    /// (and the CRC), reading on while up to the window of chunks are read and not yet acknowledged; the chunks leave for the
    /// transport in order as the window allows, from the reading thread or from the thread an acknowledgment arrives on
    /// (<see cref="OnAck"/>), which sends the next ones itself. So the reader waits only when the window is full, not for each
    /// acknowledgment's round trip, and an acknowledgment costs no wake-up of the reading thread (the reader was the stream's
    /// bound: 360-940 ms of wall time per 33 MB, ring bench; while it waited for the first chunk's acknowledgment it read
    /// nothing). The first chunk goes alone: the receiver's loop checks the replica at the first chunk and registers the
    /// transfer before acknowledging it, so every later chunk finds it off the loop. The loop only starts the transfer and
    /// ends it (<see cref="Outcome"/>; <see cref="Stop"/>). The reader belongs to the thread, which disposes of it when it ends.
    /// Thread-safe: its state is guarded by one lock, under which chunks are handed to the transport (in order).
    /// </summary>
    private sealed class OutgoingSnapshot
    {
        private readonly object _gate = new();
        private readonly SemaphoreSlim _room; // chunks the reader may hold (read and not yet acknowledged): the window
        private readonly CancellationTokenSource _stop = new();
        private readonly int _shard;
        private readonly int _from;
        private readonly Action<RaftMessage> _send;
        private readonly Action _ended;
        private readonly Queue<RaftMessage> _ready = new(); // read and encoded, not sent yet; guarded by _gate, as below
        private readonly List<long> _sentAt = new();
        private readonly List<double> _roundTrips = new();
        private long _read;
        private long _sent;
        private long _acked;
        private bool _readLast;
        private bool? _outcome;
        private long _readTicks;
        private long _windowTicks;
        private long _bytes;
        private long _progressAt = System.Diagnostics.Stopwatch.GetTimestamp();

        /// <param name="from">The leader's member id (ReplicaIds), which the chunks carry.</param>
        /// <param name="window">Chunks read and not yet acknowledged, at most (NodeHostOptions.SnapshotWindow).</param>
        /// <param name="send">The transport's Send (thread-safe, never blocks).</param>
        /// <param name="ended">Wakes the loop once <see cref="Outcome"/> is set.</param>
        public OutgoingSnapshot(int shard, SnapshotMetadata metadata, int from, int to, long term, int window, Action<RaftMessage> send, Action ended)
        {
            _shard = shard;
            Metadata = metadata;
            _from = from;
            To = to;
            Term = term;
            _room = new SemaphoreSlim(Math.Max(2, window)); // the first chunk, and the one read meanwhile to know it is not the last
            _send = send;
            _ended = ended;
        }

        public SnapshotMetadata Metadata { get; }
        public int To { get; }
        public long Term { get; }
        /// <summary>When the transfer began (host clock), for the figures logged when it ends.</summary>
        public TimeSpan StartedAt { get; init; }
        /// <summary>The process's total GC pause time when the transfer began.</summary>
        public TimeSpan GcPausedBefore { get; init; }
        /// <summary>Time the thread spent reading and encoding rows (not waiting for the window), and the bytes it encoded.</summary>
        public TimeSpan ReadTime => System.Diagnostics.Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _readTicks));
        /// <summary>Time the thread waited for room in the window (chunks read and not yet acknowledged).</summary>
        public TimeSpan WindowWait => System.Diagnostics.Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _windowTicks));
        public long Bytes => Interlocked.Read(ref _bytes);
        public long Sent { get { lock (_gate) return _sent; } }
        /// <summary>Since the last chunk sent or acknowledged: the transfer is abandoned when this passes the ack timeout.</summary>
        public TimeSpan SinceProgress => System.Diagnostics.Stopwatch.GetElapsedTime(Interlocked.Read(ref _progressAt));
        /// <summary>Null while the stream runs; true once every chunk was acknowledged, false once one was refused or reading
        /// the shard failed (<see cref="Failure"/>).</summary>
        public bool? Outcome { get { lock (_gate) return _outcome; } }
        public Exception? Failure { get; private set; }

        /// <summary>
        /// Starts the stream on a thread of its own (loop thread, once). Not on the thread pool: reading a large shard keeps its
        /// thread busy for hundreds of milliseconds, and the window rarely makes it wait, so a pool worker would be taken for
        /// the whole read, one of the 2 a 2-core machine starts with, while the node's client sessions and the control loop's
        /// awaited steps run on the pool. (Once in the ring bench, with the reader on the pool, the sending node answered
        /// nothing for 0.6-0.7 s just as a 33 MB stream began; that the pool was the cause is not shown, nor did the 10 moves
        /// measured with this thread show a change in the stream's rate or the writes' p99 beyond the noise at load 14-49.)
        /// </summary>
        public void Start(ShardSnapshotReader reader, int chunkBytes) =>
            new Thread(() => Stream(reader, chunkBytes)) { IsBackground = true, Name = $"replication-snapshot-{_shard}" }.Start();

        private void Stream(ShardSnapshotReader reader, int chunkBytes)
        {
            // The reading and encoding of rows yield the cores to the node loops. An image's reading is a file's bytes copied
            // into the chunks and a CRC (no SQLite, no encoding): at the lowest priority it waited for a core for most of
            // its 0.9 s per 41 MB (ring bench, --store-layout shard), so it keeps the normal one.
            if (!reader.IsImage) BackgroundPriority.LowerCurrentThread();
            SnapshotChunkBuffer? held = null, next = null;
            try
            {
                // A chunk leaves once the one after it, or the end, is known: the last one carries the metadata and the CRC.
                // The chunks are pooled buffers (SnapshotChunkBuffer): one not handed to Offer is returned here (finally).
                uint crc = 0;
                WaitForRoom();
                long began = System.Diagnostics.Stopwatch.GetTimestamp();
                foreach (var chunk in reader.ChunkBuffers(chunkBytes))
                {
                    next = chunk;
                    _stop.Token.ThrowIfCancellationRequested();
                    if (!reader.IsImage) crc = Crc32C.Append(crc, chunk.Memory.Span); // an image's: from its own, at the end
                    Interlocked.Add(ref _bytes, chunk.Length);
                    if (held is not null)
                    {
                        var offered = held;
                        held = null;
                        Offer(offered, last: false, 0);
                    }
                    held = next;
                    next = null;
                    Interlocked.Add(ref _readTicks, System.Diagnostics.Stopwatch.GetTimestamp() - began);
                    WaitForRoom(); // for the chunk the reader reads next
                    began = System.Diagnostics.Stopwatch.GetTimestamp();
                }
                Interlocked.Add(ref _readTicks, System.Diagnostics.Stopwatch.GetTimestamp() - began);
                var lastChunk = held ?? throw new InvalidOperationException("The snapshot reader ended without a chunk.");
                held = null;
                if (reader.IsImage) crc = reader.ImageChunksCrc;
                Offer(lastChunk, last: true, crc);
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                // Stopped by the loop, or ended by a refusal.
            }
            catch (Exception e)
            {
                Failure = e;
                End(false);
            }
            finally
            {
                held?.Dispose();
                next?.Dispose();
                reader.Dispose();
            }
        }

        private void WaitForRoom()
        {
            if (_room.Wait(0)) return;
            long waiting = System.Diagnostics.Stopwatch.GetTimestamp();
            _room.Wait(_stop.Token);
            Interlocked.Add(ref _windowTicks, System.Diagnostics.Stopwatch.GetTimestamp() - waiting);
        }

        /// <summary>A chunk read and encoded (the reading thread): queued, and sent at once if the window allows. Takes the
        /// chunk's buffer over: the transport returns it once it has encoded the chunk's frame (PeerSender), or this transfer
        /// when it ends before handing it over (<see cref="End"/>; here, when it has ended already).</summary>
        private void Offer(SnapshotChunkBuffer chunk, bool last, uint crc)
        {
            lock (_gate)
            {
                if (_outcome is not null)
                {
                    chunk.Dispose();
                    throw new OperationCanceledException();
                }
                long sequence = _read++;
                _readLast = last;
                _ready.Enqueue(new RaftMessage
                {
                    Type = MessageType.SnapshotChunk,
                    Group = _shard,
                    From = _from,
                    To = To,
                    Term = Term,
                    Index = Metadata.Index,
                    LogTerm = Metadata.Term,
                    Context = sequence,
                    Commit = last ? 1 : 0,
                    RejectHint = last ? crc : 0,
                    Voters = last ? Metadata.Voters : Array.Empty<int>(),
                    Learners = last ? Metadata.Learners : Array.Empty<int>(),
                    Chunk = chunk.Memory, // on the wire, the message's one entry (sequence + 1, Metadata.Term): RaftMessageCodec
                    ChunkLease = chunk,
                });
                SendReady();
            }
        }

        /// <summary>Hands the queued chunks to the transport, in order (under _gate): the first alone, then all of them (the
        /// reader holds at most the window).</summary>
        private void SendReady()
        {
            while (_ready.Count > 0 && (_acked > 0 || _sent == 0))
            {
                _sentAt.Add(System.Diagnostics.Stopwatch.GetTimestamp());
                _sent++;
                Interlocked.Exchange(ref _progressAt, System.Diagnostics.Stopwatch.GetTimestamp());
                _send(_ready.Dequeue());
            }
        }

        /// <summary>
        /// An acknowledgment (the transport's thread). They come in chunk order; one of an older transfer to the same replica,
        /// or a duplicate, is ignored. Each frees a chunk of the window; the first one lets the chunks read meanwhile go.
        /// </summary>
        public void OnAck(RaftMessage ack)
        {
            lock (_gate)
            {
                if (_outcome is not null || ack.Context != _acked || _acked >= _sent) return;
                if (ack.Reject)
                {
                    End(false);
                    return;
                }
                _roundTrips.Add(System.Diagnostics.Stopwatch.GetElapsedTime(_sentAt[(int)_acked]).TotalMilliseconds);
                _acked++;
                Interlocked.Exchange(ref _progressAt, System.Diagnostics.Stopwatch.GetTimestamp());
                if (_readLast && _acked == _read)
                {
                    End(true);
                    return;
                }
                SendReady();
                _room.Release();
            }
        }

        private void End(bool succeeded)
        {
            lock (_gate)
            {
                if (_outcome is not null) return;
                _outcome = succeeded;
                foreach (var unsent in _ready) unsent.ChunkLease?.Dispose(); // never handed to the transport
                _ready.Clear();
            }
            _stop.Cancel(); // a refused stream stops reading
            _ended();
        }

        /// <summary>Acknowledgment round trips (send to acknowledgment, per chunk): median and longest, ms.</summary>
        public (double Median, double Max) RoundTrips()
        {
            lock (_gate)
            {
                if (_roundTrips.Count == 0) return (0, 0);
                var sorted = _roundTrips.Order().ToArray();
                return (sorted[sorted.Length / 2], sorted[^1]);
            }
        }

        /// <summary>Ends the stream (its thread disposes of the reader). Loop thread.</summary>
        public void Stop() => _stop.Cancel();
    }

    /// <summary>A fresh replica's snapshot being stored in batches, one received chunk (about 256 KiB of rows) per batch
    /// (see the class summary).</summary>
    private sealed class SnapshotInstall
    {
        public SnapshotInstall(IncomingSnapshot staging, RaftMessage last, bool replacing)
        {
            Staging = staging;
            Last = last;
            Replacing = replacing;
            staging.Rewind();
            RowsDone = staging.Expected == 0; // a transfer has at least one chunk (an empty shard's is empty)
        }

        public IncomingSnapshot Staging { get; }
        /// <summary>At most <see cref="SmallInstallBytes"/>: stored at once, without the checkpoint before its durable commits.</summary>
        public bool Small => Staging.Bytes <= SmallInstallBytes;
        /// <summary>The replica holds data of its own: the rows are staged, then swapped in (KvStore.StagedInstall.cs);
        /// <see cref="Swapping"/> once past the commit point, not to be abandoned (a restart would complete it).</summary>
        public bool Replacing { get; }
        public bool Swapping { get; set; }
        /// <summary>A swap step failed on a full disk: the next one not before this (host clock).</summary>
        public TimeSpan RetryAt { get; set; }
        /// <summary>The transfer's last chunk: the snapshot's metadata, and the chunk acknowledged once installed.</summary>
        public RaftMessage Last { get; }
        public int Batches { get; set; }
        public bool RowsDone { get; private set; }
        /// <summary>Once the rows are all stored: the checkpoint that syncs them before the durable commit (KvStore.RequestCheckpoint).</summary>
        public long? SyncTicket { get; set; }
        public TimeSpan LongestIteration { get; set; }

        /// <summary>The next chunk to store (call only while <see cref="RowsDone"/> is false); the last one sets it. Valid until
        /// the next call: read from the staging file into one buffer (<see cref="IncomingSnapshot.NextChunk"/>).</summary>
        public ReadOnlyMemory<byte> NextChunk()
        {
            var chunk = Staging.NextChunk();
            if (Staging.ChunksRead == Staging.Expected)
            {
                RowsDone = true;
                Staging.Stored = true;
            }
            return chunk;
        }
    }

    /// <summary>
    /// An incoming transfer staged as length-prefixed chunks: in memory up to <paramref name="memoryLimit"/> bytes, then in
    /// a file (see <see cref="NodeHostOptions.SnapshotStagingMemory"/>; a crash leaves a file the next start deletes,
    /// DiscardStagedSnapshots, never state). Each chunk is copied once on arrival, from the transport's frame buffer
    /// (RaftMessage.Chunk). The install reads the chunks back one at a time (<see cref="NextChunk"/>; from the file into one
    /// buffer), and the rows are written once, into state.db, either way.
    /// Not thread-safe, but for its lock (the instance): the transport's thread appends under it, and Dispose takes it;
    /// once the transfer is complete and handed to the loop, only the loop touches it.
    /// </summary>
    private sealed class IncomingSnapshot(string path, RaftMessage first, TimeSpan startedAt, int memoryLimit) : IDisposable
    {
        /// <summary>The chunks as received while they fit in memory, each a copy in a buffer of the snapshot stream's pool
        /// (SnapshotChunkBuffer), returned once stored or discarded; null once staged in the file.</summary>
        private List<SnapshotChunkBuffer>? _chunks = new();
        private FileStream? _file;
        private byte[]? _head; // the first chunk's header: its range, read once the checksum passed (Range)
        private byte[] _readBuffer = [];
        private bool _disposed;
        /// <summary>An image's writer (the first chunk's format byte says so): its bytes go straight into the image's file as
        /// they arrive, instead of being staged as chunks (<see cref="ShardImageWriter"/>).</summary>
        private ShardImageWriter? _image;

        public string Path { get; } = path;

        /// <summary>The file the image is written into (a transfer of an image of the sender's shard file); null for rows.</summary>
        public string? ImagePath { get; private set; }

        /// <summary>Ends an image's file once every chunk passed the transfer's checksum (no-op for rows): recovered, checked
        /// and durable (<see cref="ShardImageWriter.Complete"/>), on the thread the last chunk arrived on.</summary>
        /// <exception cref="StorageCorruptException">The image is malformed or damaged; its files are gone.</exception>
        public void CompleteImage()
        {
            lock (this)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                _image?.Complete();
            }
        }
        /// <summary>The sender (the leader's member id), the replica it addresses, its term, and the snapshot's index and term,
        /// as the first chunk gave them: every later chunk must carry the same.</summary>
        public int Leader { get; } = first.From;
        public int Member { get; } = first.To;
        public long SenderTerm { get; } = first.Term;
        public long Index { get; } = first.Index;
        public long Term { get; } = first.LogTerm;
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
        /// <summary>When the completed transfer was handed to the loop (a Stopwatch timestamp; 0: taken on the loop), and how
        /// long it waited there.</summary>
        public long HandedOverAt { get; set; }
        public TimeSpan LoopWait { get; set; }
        /// <summary>Its rows are in state.db already (a batched install), and how long storing them took.</summary>
        public bool Stored { get; set; }
        /// <summary>Stored over the replica's own rows, staged beside them and swapped in (KvStore.StagedInstall.cs).</summary>
        public bool Swapped { get; set; }
        public TimeSpan StoredIn { get; set; }
        /// <summary>The longest loop iteration while its rows were stored.</summary>
        public TimeSpan LongestIteration { get; set; }
        /// <summary>
        /// The longest of its rows' transactions (one received chunk each). Measured because the loop's longest iteration
        /// could be any of its work: in the ring bench (33 MB, 2 cores, load 6-10) one chunk's transaction took 13-91 ms at
        /// worst. Transactions of 32 KiB instead of a 256 KiB chunk took 15-78 ms at worst, stored a third slower, and left
        /// the writes' p99 where it was (4 alternated runs each, stop 31): the long ones are waits (CPU, write-back), not
        /// rows.
        /// </summary>
        public TimeSpan LongestTransaction { get; set; }
        /// <summary>The last chunk of a transfer the core took, acknowledged once the Ready's snapshot restarted the log at it.</summary>
        public RaftMessage? PendingAck { get; set; }

        /// <summary>The shard's hash range the snapshot carries (its first chunk; null: none, see KvStore.RecordRange).</summary>
        /// <exception cref="StorageCorruptException">The first chunk is malformed.</exception>
        public (ulong Start, ulong Last)? Range => SnapshotChunkCodec.RangeOf(_head);

        /// <summary>Whether <paramref name="m"/> is this transfer's next chunk (call under the staging's lock).</summary>
        public bool Continues(RaftMessage m) =>
            !_disposed && !Completed && HasOneChunk(m) && m.From == Leader && m.To == Member && m.Term == SenderTerm
            && m.Index == Index && m.LogTerm == Term && m.Context == Expected;

        /// <summary>Stages a copy of <paramref name="chunk"/> (the caller's bytes are not kept).</summary>
        public void Append(ReadOnlySpan<byte> chunk)
        {
            if (_head is null && chunk.Length > 0 && chunk[0] == SnapshotChunkCodec.ImageFormatVersion)
            {
                ImagePath = Path + ".image";
                _image = new ShardImageWriter(ImagePath);
                _head = [chunk[0]];
                Crc = Crc32C.Append(Crc, chunk[..1]);
                Bytes++;
                chunk = chunk[1..];
            }
            if (_image is not null)
            {
                // A malformed image throws here (StorageCorruptException): the transfer fails. Its CRC is taken from the
                // image's own at the end (Complete): the writer reads every byte for it, a second pass here would repeat it.
                _image.Write(chunk);
                Bytes += chunk.Length;
                Expected++;
                return;
            }
            _head ??= chunk[..Math.Min(chunk.Length, 64)].ToArray();
            if (_chunks is not null && Bytes + chunk.Length > memoryLimit)
            {
                _file = new FileStream(Path, FileMode.Create, FileAccess.ReadWrite, FileShare.None, bufferSize: 0);
                foreach (var kept in _chunks)
                {
                    WriteToFile(kept.Memory.Span);
                    kept.Dispose();
                }
                _chunks = null;
            }
            if (_chunks is not null)
            {
                var copy = SnapshotChunkBuffer.Rent(chunk.Length);
                chunk.CopyTo(copy);
                _chunks.Add(new SnapshotChunkBuffer(copy, chunk.Length));
            }
            else WriteToFile(chunk);
            Crc = Crc32C.Append(Crc, chunk);
            Bytes += chunk.Length;
            Expected++;
        }

        private void WriteToFile(ReadOnlySpan<byte> chunk)
        {
            Span<byte> length = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(length, chunk.Length);
            _file!.Write(length);
            _file.Write(chunk);
        }

        public void Complete(TimeSpan at)
        {
            // An image's chunks' CRC (the format byte, then its stream): joined from the writer's, which covers the stream
            // once its trailer matched. Before that (cut short) it stays the format byte's, and fails the sender's.
            if (_image?.StreamCrc is { } imageCrc) Crc = Crc32C.Combine(Crc, imageCrc, _image.Received);
            _file?.Flush();
            Completed = true;
            CompletedAt = at;
        }

        /// <summary>Chunks read back since <see cref="Rewind"/>.</summary>
        public long ChunksRead { get; private set; }

        /// <summary>Starts reading the staged chunks back from the first (a completed transfer; loop thread; once).</summary>
        public void Rewind()
        {
            ObjectDisposedException.ThrowIf(_chunks is null && _file is null, this);
            if (_file is not null) _file.Position = 0;
            ChunksRead = 0;
        }

        /// <summary>
        /// The next staged chunk, in order (call at most <see cref="Expected"/> times after <see cref="Rewind"/>; once: an
        /// in-memory chunk's buffer goes back to the pool at the next call). Valid until the next call or Dispose. From the
        /// file it is read into one buffer, reused: nothing is allocated per chunk.
        /// </summary>
        /// <exception cref="StorageCorruptException">The staging file ended early or holds a bad length.</exception>
        public ReadOnlyMemory<byte> NextChunk()
        {
            ObjectDisposedException.ThrowIf(_chunks is null && _file is null, this);
            if (_chunks is not null)
            {
                if (ChunksRead > 0) _chunks[(int)ChunksRead - 1].Dispose(); // stored: valid only until this call
                return _chunks[(int)ChunksRead++].Memory;
            }
            Span<byte> prefix = stackalloc byte[4];
            _file!.ReadExactly(prefix);
            int length = BinaryPrimitives.ReadInt32LittleEndian(prefix);
            if (length < 0 || length > _file.Length - _file.Position)
                throw new StorageCorruptException($"The snapshot staging file {Path} holds a chunk length of {length} bytes past its end.");
            if (_readBuffer.Length < length) _readBuffer = new byte[Math.Max(length, _readBuffer.Length * 2)];
            _file.ReadExactly(_readBuffer, 0, length);
            ChunksRead++;
            return _readBuffer.AsMemory(0, length);
        }

        /// <summary>Discards the staged chunks. Any thread: under the staging's lock, against a chunk being appended.</summary>
        public void Dispose()
        {
            lock (this)
            {
                _disposed = true;
                if (_image is not null)
                {
                    _image.Dispose(); // before Complete: its partial files go
                    foreach (var suffix in new[] { "", "-wal", "-shm" }) File.Delete(ImagePath + suffix); // completed, not put in place
                }
                if (_chunks is not null) foreach (var kept in _chunks) kept.Dispose();
                _chunks = null;
                _readBuffer = [];
                if (_file is null) return;
                _file.Dispose();
                _file = null;
                File.Delete(Path);
            }
        }
    }
}
