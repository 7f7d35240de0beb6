using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Replication.Engine;
using Replication.Engine.Raft;
using Replication.Engine.Storage;
using Replication.Engine.Transport;

/// <summary>
/// The parts of a shard move's snapshot copy timed alone, in this process, on the bench's temp folder
/// (`--only snapshot-parts`, issue 9's streaming goal): a shard of <see cref="BenchOptions.RingMegabytes"/> of 1,000-byte
/// values (the ring scenario's rows) in a state.db, then each stage the stream passes through, over the same chunks:
/// the sender's SQLite stepping alone, its reading and encoding (ShardSnapshotReader.Chunks), the CRC, the frame encoding
/// and decoding of the lane, loopback TCP, and the receiver's storing (one chunk per transaction, as NodeHost's batched
/// install) with SQLite's auto-checkpoint and with the install's own checkpointing thread (KvStore.PauseAutoCheckpoint).
/// Each stage's rate is a ceiling for the stream on this machine at this load; the slowest bounds it. Measures; never
/// asserts. Every loop is bounded by the shard's size.
/// </summary>
internal static class SnapshotPartsScenario
{
    private const int ChunkBytes = 256 * 1024;

    public static int Run(BenchOptions options, string folder)
    {
        Directory.CreateDirectory(folder);
        var out_ = new StringBuilder();
        void Line(string s) { Console.WriteLine(s); out_.AppendLine(s); }
        int rows = (int)(options.RingMegabytes * 1_000_000L / 1000);
        Line($"Snapshot parts, {DateTimeOffset.Now:yyyy-MM-dd HH:mm zzz}: {Machine.Describe(folder)}; load average {Machine.LoadAverage()} at the start.");
        string value = new('f', 1000);
        string srcPath = Path.Combine(folder, "src.db");
        using var src = new KvStore(srcPath);
        src.InstallSnapshot(0, 100_000, 1, null, SnapshotChunkCodec.Encode(
            Enumerable.Range(1, rows).Select(i => new StoredKey($"fill-{i:D9}", value, 1, i)), ChunkBytes));
        src.Flush();
        Line($"{rows:N0} rows of 1,000-byte values; state.db {new FileInfo(srcPath).Length / 1e6:0.0} MB + WAL {new FileInfo(srcPath + "-wal").Length / 1e6:0.0} MB");

        var chunks = new List<byte[]>();
        for (int rep = 0; rep < 2; rep++)
        {
            var w = Stopwatch.StartNew();
            using (var conn = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={srcPath};Mode=ReadOnly;Pooling=False"))
            {
                conn.Open();
                var db = conn.Handle!;
                SQLitePCL.raw.sqlite3_prepare_v2(db, ShardDb.ScanAllSql, out SQLitePCL.sqlite3_stmt st);
                using (st)
                {
                    SQLitePCL.raw.sqlite3_bind_int64(st, 1, 0);
                    long bytes = 0;
                    while (SQLitePCL.raw.sqlite3_step(st) == SQLitePCL.raw.SQLITE_ROW)
                        bytes += SQLitePCL.raw.sqlite3_column_blob(st, 0).Length + SQLitePCL.raw.sqlite3_column_blob(st, 1).Length;
                    Line(Rate("sender: SQLite stepping alone (no copy)", bytes, w.Elapsed));
                }
            }
            chunks.Clear();
            long gcBefore = GC.CollectionCount(2);
            w.Restart();
            using (var reader = src.OpenSnapshot(0)) foreach (var c in reader.Chunks(ChunkBytes)) chunks.Add(c);
            Line(Rate($"sender: reading and encoding, an array per chunk ({chunks.Count} chunks, {GC.CollectionCount(2) - gcBefore} full GCs)", chunks.Sum(c => (long)c.Length), w.Elapsed));
            // What a stream does (NodeHost.Snapshots.cs): pooled buffers, each returned once the lane has encoded it.
            gcBefore = GC.CollectionCount(2);
            w.Restart();
            long pooledBytes = 0;
            using (var reader = src.OpenSnapshot(0))
                foreach (var c in reader.ChunkBuffers(ChunkBytes))
                    using (c) pooledBytes += c.Length;
            Line(Rate($"sender: reading and encoding, pooled buffers ({GC.CollectionCount(2) - gcBefore} full GCs)", pooledBytes, w.Elapsed));
        }
        long total = chunks.Sum(c => (long)c.Length);
        {
            var w = Stopwatch.StartNew();
            uint crc = 0;
            foreach (var c in chunks) crc = Crc32C.Append(crc, c);
            Line(Rate("CRC-32C, one pass", total, w.Elapsed));
        }
        var frame = new byte[FrameCodec.HeaderSize + ChunkBytes * 2];
        for (int rep = 0; rep < 2; rep++)
        {
            var w = Stopwatch.StartNew();
            foreach (var c in chunks)
            {
                var batch = new[] { new RaftMessage { Type = MessageType.SnapshotChunk, From = 1, To = 2, Term = 1, Index = 100_000, LogTerm = 1, Entries = new[] { new LogEntry(1, 1, EntryType.Normal, c) } } };
                var payload = frame.AsSpan(FrameCodec.HeaderSize, RaftMessageCodec.GetBatchSize(batch));
                RaftMessageCodec.EncodeBatch(batch, payload);
                FrameCodec.WriteHeader(frame, FrameType.Raft, payload);
                FrameCodec.VerifyPayload(FrameCodec.ParseHeader(frame), payload);
                if (RaftMessageCodec.DecodeBatch(payload)[0].Entries[0].Data.Length != c.Length) throw new InvalidOperationException("frame codec");
            }
            Line(Rate("lane: frame encoding, frame CRC, check, decoding", total, w.Elapsed));
        }
        for (int rep = 0; rep < 2; rep++)
        {
            // As the lane runs now: the chunk given as RaftMessage.Chunk, decoded as a slice of the frame (no array per chunk).
            long gcBefore = GC.CollectionCount(2);
            var w = Stopwatch.StartNew();
            foreach (var c in chunks)
            {
                var batch = new[] { new RaftMessage { Type = MessageType.SnapshotChunk, From = 1, To = 2, Term = 1, Index = 100_000, LogTerm = 1, Chunk = c } };
                var payload = frame.AsMemory(FrameCodec.HeaderSize, RaftMessageCodec.GetBatchSize(batch));
                RaftMessageCodec.EncodeBatch(batch, payload.Span);
                FrameCodec.WriteHeader(frame, FrameType.Raft, payload.Span);
                FrameCodec.VerifyPayload(FrameCodec.ParseHeader(frame), payload.Span);
                if (RaftMessageCodec.DecodeBatchBorrowingChunks(payload)[0].Chunk.Length != c.Length) throw new InvalidOperationException("frame codec");
            }
            Line(Rate($"lane: frame encoding, frame CRC, check, decoding the chunk as a slice ({GC.CollectionCount(2) - gcBefore} full GCs)", total, w.Elapsed));
        }
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var received = Task.Run(() =>
            {
                using var s = listener.AcceptSocket();
                var buffer = new byte[1 << 20];
                long got = 0;
                while (got < total && s.Receive(buffer) is int n && n > 0) got += n;
                return got;
            });
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            client.Connect(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
            var w = Stopwatch.StartNew();
            foreach (var c in chunks) client.Send(c);
            if (!received.Wait(TimeSpan.FromSeconds(60))) throw new TimeoutException("loopback copy");
            Line(Rate("loopback TCP", total, w.Elapsed));
            listener.Stop();
        }
        // The receiver: alternately with SQLite's auto-checkpoint and with the install's checkpointing thread.
        for (int rep = 0; rep < 4; rep++)
        {
            bool paused = rep % 2 == 1;
            string path = Path.Combine(folder, $"dst{rep}.db");
            using var dst = new KvStore(path);
            if (paused) dst.PauseAutoCheckpoint();
            var per = new List<double>();
            var w = Stopwatch.StartNew();
            for (int i = 0; i < chunks.Count; i++)
            {
                long t = Stopwatch.GetTimestamp();
                dst.InstallSnapshotRows(0, 100_000, 1, chunks[i], first: i == 0);
                dst.NudgeCheckpoint();
                per.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            }
            var stored = w.Elapsed;
            long ticket = dst.RequestCheckpoint();
            while (!dst.CheckpointDone(ticket, TimeSpan.FromMilliseconds(100))) { }
            var synced = w.Elapsed;
            dst.CompleteSnapshotInstall(0, 100_000, 1, null);
            var completed = w.Elapsed;
            dst.ResumeAutoCheckpoint();
            per.Sort();
            Line(string.Create(CultureInfo.InvariantCulture,
                $"receiver ({(paused ? "checkpointing thread" : "auto-checkpoint")}): rows {stored.TotalMilliseconds:0} ms, waiting for the checkpoint {(synced - stored).TotalMilliseconds:0} ms, durable commit {(completed - synced).TotalMilliseconds:0} ms = {total / 1e6 / completed.TotalSeconds:0} MB/s; per chunk p50 {per[per.Count / 2]:0.0} ms, p99 {per[(int)(per.Count * 0.99)]:0.0} ms, max {per[^1]:0.0} ms"));
        }
        Line($"load average {Machine.LoadAverage()} at the end.");
        Directory.CreateDirectory(options.OutDir);
        File.WriteAllText(Path.Combine(options.OutDir, "snapshot-parts.txt"), out_.ToString());
        Console.WriteLine($"wrote {Path.Combine(options.OutDir, "snapshot-parts.txt")}");
        return 0;
    }

    private static string Rate(string what, long bytes, TimeSpan took) => string.Create(CultureInfo.InvariantCulture,
        $"{what}: {bytes / 1e6:0.0} MB in {took.TotalMilliseconds:0} ms = {bytes / 1e6 / took.TotalSeconds:0} MB/s");
}
