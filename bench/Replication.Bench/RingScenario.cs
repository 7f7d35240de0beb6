using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Replication;
using Replication.Engine.Client;
using Replication.Engine;
using Replication.Engine.Cluster;
using Replication.Engine.Ring;
using Replication.Engine.Transport;
using Replication.Engine.Storage;

/// <summary>
/// The ring scenario (`./build.ps1 Bench -Only ring`, issue 9's measured goals): node processes on loopback, writers
/// running throughout, and
/// <list type="number">
/// <item>a shard filled with <see cref="BenchOptions.RingMegabytes"/> of rows, then one of its replicas moved by a pin
/// and moved back by unpinning it, with writes continuing: write p50/p99 during each move against the seconds before
/// (goal p99 ≤ 2× idle), and the snapshot's rate (its bytes over the time from the leader's AddLearner to the
/// learner's install, both from the node logs) against a raw copy of the same rows as a SQLite file on the same disk
/// (goal ≥ half);</item>
/// <item>leaderships after a node joins, a node restarts and a node leaves: the time from the change's last
/// membership or node-state change (seen in the status, polled every 50 ms) until every running voter leads ⌊S/N⌋ or
/// ⌈S/N⌉ for good (goal ≤ 2 s), and the balancer's transfers against the least that could do it (no flapping);</item>
/// <item>at the end every acknowledged write is read back (linearizable) and counted.</item>
/// </list>
/// The nodes compact their logs after a few hundred entries (--snapshot-entries) so a new replica is copied by snapshot
/// rather than by replaying the log. Measures; never asserts. Every wait is bounded.
/// </summary>
internal sealed partial class RingScenario
{
    private const int ShardCount = 8;
    private const int WriterCount = 4;
    private const int ValueBytes = 100;
    private const int FillValueBytes = 1000;
    private const int FillBatch = 25;
    private static readonly TimeSpan StartBound = TimeSpan.FromSeconds(90);
    private static readonly TimeSpan MoveBound = TimeSpan.FromSeconds(180);
    /// <summary>Leaders count as settled once balanced, with no membership change, for this long.</summary>
    private static readonly TimeSpan SettledFor = TimeSpan.FromSeconds(5);

    private readonly BenchOptions _options;
    private readonly string _folder;
    private readonly string _secret;
    private readonly ClusterSecret _clusterSecret;
    private readonly Dictionary<int, (ChildProcess Process, string Path, string Endpoint)> _nodes = new();
    private readonly ConcurrentQueue<(long At, string Line)> _log = new();
    private readonly List<Sample> _samples = new();
    private readonly object _samplesGate = new();
    private ClusterClient? _admin;
    /// <summary>The idle seconds before the first move (timestamps), which each move's p99 is also held to at its own length.</summary>
    private (long From, long To) _idle;
    private readonly long _started = Stopwatch.GetTimestamp();

    public RingScenario(BenchOptions options, string folder, string secret)
    {
        _options = options;
        _folder = folder;
        _secret = secret;
        _clusterSecret = ClusterSecret.FromString(secret);
    }

    public async Task<RingResult> RunAsync()
    {
        var total = Stopwatch.StartNew();
        using var bound = new CancellationTokenSource(TimeSpan.FromMinutes(15)); // the scenario may not hang the bench
        var ct = bound.Token;
        Directory.CreateDirectory(_folder);
        var result = new RingResult
        {
            Machine = Machine.Describe(_folder), Started = DateTimeOffset.Now.ToString("yyyy-MM-dd HH:mm zzz"), LoadAverageStart = Machine.LoadAverage(),
            Shards = ShardCount, Writers = WriterCount, ValueBytes = ValueBytes,
        };
        Console.WriteLine();
        Console.WriteLine($"== ring: {ShardCount} shards, RF 3, 4 node processes (a 5th joins and leaves), {WriterCount} writers; load average {result.LoadAverageStart} ==");
        try
        {
            var ports = Servers.FreePorts(5);
            for (int n = 1; n <= 4; n++) await StartNodeAsync(n, $"127.0.0.1:{ports[n - 1]}", n == 1 ? null : $"127.0.0.1:{ports[0]}");
            _admin = await ClusterClient.ConnectAsync([_nodes[1].Endpoint], _clusterSecret, "bench", cancellationToken: ct);
            await _admin.WaitForPlacementAsync(null, MoveBound, ct);
            var poller = PollAsync(ct);
            await WaitSettledAsync(Stopwatch.GetTimestamp(), ct);
            Console.WriteLine($"formed: {Describe(Latest().Status)}");

            // The shard to move: the first one; its non-leading voter with the highest id leaves, the node without it comes.
            await FillAsync(Latest().Status.Shards.OrderBy(s => s.Id).First(), ct);
            await WaitSettledAsync(Stopwatch.GetTimestamp(), ct);
            var status = Latest().Status;
            var shard = status.Shards.OrderBy(s => s.Id).First();
            int from = shard.Voters.Where(v => v != shard.Leader).Max();
            int to = status.Nodes.Select(n => n.Id).Except(shard.Voters).Min();

            await using var writers = await Writers.StartAsync(_nodes.OrderBy(n => n.Key).Select(n => n.Value.Endpoint).ToArray(), _clusterSecret, WriterCount, ValueBytes, shard, ct);
            await Task.Delay(1000, ct); // connections warm
            long idleStart = Stopwatch.GetTimestamp();
            await Task.Delay(TimeSpan.FromSeconds(_options.Quick ? 3 : 8), ct);
            _idle = (idleStart, Stopwatch.GetTimestamp());
            result.Idle = writers.Window(_idle.From, _idle.To);
            Console.WriteLine($"idle writes: {Format(result.Idle)}");

            var pinned = shard.Voters.Where(v => v != from).Append(to).ToArray();
            for (int pair = 1; pair <= _options.RingMovePairs; pair++)
            {
                string nth = _options.RingMovePairs > 1 ? $" ({pair} of {_options.RingMovePairs})" : "";
                if (pair > 1) await WaitSettledAsync(Stopwatch.GetTimestamp(), ct); // the unpin's leader hand-over over first
                result.Moves.Add(await MoveAsync($"pin: replica {from} -> {to}{nth}", shard.Id, from, to,
                    () => RetryAsync(() => _admin.PinShardAsync(shard.Id, pinned, TimeSpan.FromSeconds(30), ct), ct), writers, ct));
                if (pair == 1) await RawCopyAsync(shard, result, ct);
                result.Moves.Add(await MoveAsync($"unpin: replica {to} -> {from}{nth}", shard.Id, to, from,
                    () => RetryAsync(() => _admin.PinShardAsync(shard.Id, null, TimeSpan.FromSeconds(30), ct), ct), writers, ct));
            }

            result.Changes.Add(await ChangeAsync("node 5 joins", async () =>
            {
                await StartNodeAsync(5, $"127.0.0.1:{ports[4]}", _nodes[1].Endpoint);
                await _admin.WaitForPlacementAsync(null, MoveBound, ct);
            }, ct));
            result.Changes.Add(await RestartAsync(2, ct));
            result.Changes.Add(await ChangeAsync("node 5 leaves", async () =>
            {
                await RetryAsync(() => _admin.RemoveNodeAsync(5, force: false, TimeSpan.FromSeconds(30), ct), ct);
                await _nodes[5].Process.Process.WaitForExitAsync(ct).WaitAsync(MoveBound, ct);
                await _admin.WaitForPlacementAsync(null, MoveBound, ct);
            }, ct));

            var acknowledged = await writers.StopAsync();
            result.WriteErrors = writers.Errors;
            result.FirstWriteError = writers.FirstError;
            result.Acknowledged = acknowledged.Count;
            (result.ReadBack, result.Missing) = await ReadBackAsync(acknowledged, ct);
            Console.WriteLine($"read back {result.ReadBack:N0} of {result.Acknowledged:N0} acknowledged writes; {result.Missing} missing or stale; {result.WriteErrors} write errors{(result.FirstWriteError is { } e ? $" (first: {e})" : "")}");
            bound.Cancel(); // ends the poller
            try { await poller; } catch (OperationCanceledException) { }
        }
        finally
        {
            if (_admin is not null) await _admin.DisposeAsync();
            foreach (var n in _nodes.Values) n.Process.Dispose();
            // Every node's lines, in arrival order with the bench's clock: what to read when a figure looks wrong.
            Directory.CreateDirectory(_options.OutDir);
            string nodesLog = Path.Combine(_options.OutDir, "ring-nodes.log");
            File.WriteAllLines(nodesLog, _log.Select(l => $"{Ms(l.At - _started),10:0.0} {l.Line}"));
            Console.WriteLine($"node logs: {nodesLog}");
        }
        result.LoadAverageEnd = Machine.LoadAverage();
        result.Seconds = total.Elapsed.TotalSeconds;
        return result;
    }

    /// <summary>An idempotent admin request (a pin, a removal) sent again while the metadata group is busy electing under load (bounded).</summary>
    private static async Task RetryAsync(Func<Task> request, CancellationToken ct)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                await request();
                return;
            }
            catch (ReplicationException e) when (attempt < 30 && e is QuorumUnavailableException or NotLeaderException or RemoteOperationException)
            {
                await Task.Delay(500, ct);
            }
        }
    }

    private async Task StartNodeAsync(int n, string endpoint, string? join)
    {
        string path = _nodes.TryGetValue(n, out var known) ? known.Path : Path.Combine(_folder, $"node{n}");
        var (file, prefix) = Servers.Self();
        var args = prefix.Concat(["node", "--path", path, "--listen", endpoint, "--shards", ShardCount.ToString(CultureInfo.InvariantCulture),
            "--snapshot-entries", "100", "--snapshot-catch-up", "20"]).ToList();
        if (join is not null) args.AddRange(["--join", join]);
        if (_options.ElectionTicks is int ticks) args.AddRange(["--election-ticks", ticks.ToString(CultureInfo.InvariantCulture)]);
        if (_options.SnapshotChunkBytes is int chunk) args.AddRange(["--snapshot-chunk-bytes", chunk.ToString(CultureInfo.InvariantCulture)]);
        if (_options.StoreLayout is { } layout) args.AddRange(["--store-layout", layout]);
        string name = $"node{n}";
        Action<string> echo = line => _log.Enqueue((Stopwatch.GetTimestamp(), line));
        if (_options.Verbose) echo += Console.WriteLine;
        var child = await ChildProcess.StartAsync(name, file, args, Servers.NodeEnvironment(_secret), echo);
        _nodes[n] = (child, path, endpoint);
        var ready = await child.WaitForLineAsync("READY ", StartBound);
        if (ready.Split(' ')[^1] != n.ToString(CultureInfo.InvariantCulture))
            throw new InvalidOperationException($"{name} came up as node {ready.Split(' ')[^1]}; the scenario numbers nodes in start order");
    }

    /// <summary>Writes rows of <see cref="FillValueBytes"/> into <paramref name="shard"/> alone (keys picked by their hash)
    /// until it holds <see cref="BenchOptions.RingMegabytes"/>, in batches, four at a time.</summary>
    private async Task FillAsync(ReplicationShard shard, CancellationToken ct)
    {
        long target = (long)_options.RingMegabytes * 1_000_000;
        int batches = (int)Math.Ceiling(target / (double)(FillValueBytes * FillBatch));
        string value = new('f', FillValueBytes);
        int next = 0, key = 0;
        var watch = Stopwatch.StartNew();
        await using var client = await ClusterClient.ConnectAsync(_nodes.Values.Select(n => n.Endpoint).ToArray(), _clusterSecret, "bench", cancellationToken: ct);
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            while (Interlocked.Increment(ref next) <= batches)
            {
                var batch = new List<KeyWrite>(FillBatch);
                while (batch.Count < FillBatch)
                {
                    string k = $"fill-{Interlocked.Increment(ref key):D9}";
                    ulong h = KeyHash.Of(k);
                    if (h >= shard.HashStart && h <= shard.HashEnd) batch.Add(new KeyWrite(k, value));
                }
                // Puts of fixed values: a batch whose outcome is unknown (a leader change under load) is simply sent again.
                for (int attempt = 1; ; attempt++)
                {
                    try
                    {
                        var results = await client.WriteAsync(batch, WriteConcern.Majority, TimeSpan.FromSeconds(30), ct);
                        if (results.FirstOrDefault(r => r.Error is not null) is { Error: { } error }) throw error;
                        break;
                    }
                    catch (ReplicationException) when (attempt < 30) { await Task.Delay(1000, ct); }
                }
            }
        }, ct)));
        Console.WriteLine($"filled shard {shard.Id} with {batches * FillBatch:N0} rows of {FillValueBytes} bytes ({batches * FillBatch * (long)FillValueBytes / 1e6:0} MB of values) in {watch.Elapsed.TotalSeconds:0.0} s");
    }

    /// <summary>Starts a move, waits (bounded) until the shard's voters are the old ones with <paramref name="to"/> for
    /// <paramref name="from"/> and it has no learner, and reads the move's copy from the node logs.</summary>
    private async Task<RingMove> MoveAsync(string label, int shard, int from, int to, Func<Task> start, Writers writers, CancellationToken ct)
    {
        var before = Latest().Status.Shards.First(s => s.Id == shard);
        var want = before.Voters.Where(v => v != from).Append(to).Order().ToArray();
        long t0 = Stopwatch.GetTimestamp();
        await start();
        var deadline = Stopwatch.GetTimestamp() + (long)(MoveBound.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            var s = Latest().Status.Shards.FirstOrDefault(x => x.Id == shard);
            if (s is not null && s.Voters.Order().SequenceEqual(want) && s.Learners.Count == 0 && s.Leader != 0) break;
            if (Stopwatch.GetTimestamp() > deadline) throw new TimeoutException($"{label}: shard {shard} did not reach [{string.Join(",", want)}] within {MoveBound.TotalSeconds:0} s: {Describe(Latest().Status)}");
            await Task.Delay(20, ct);
        }
        long t1 = Stopwatch.GetTimestamp();
        var window = writers.Window(t0, t1);
        // The copy, from the logs: the leader's AddLearner(to) for this group, then the learner's install line.
        var lines = _log.Where(l => l.At >= t0).ToArray();
        // The learner is named by its member id (low 16 bits: the node, above: the incarnation; Transport/ReplicaIds.cs).
        var add = lines.FirstOrDefault(l => AddLearnerLine().Match(l.Line) is { Success: true } a
            && a.Groups["shard"].Value == shard.ToString(CultureInfo.InvariantCulture)
            && (int.Parse(a.Groups["member"].Value, CultureInfo.InvariantCulture) & 0xFFFF) == to);
        var installed = lines.Select(l => (l.At, Match: InstallLine().Match(l.Line)))
            .FirstOrDefault(l => l.Match.Success && l.Match.Groups["node"].Value == to.ToString(CultureInfo.InvariantCulture) && l.Match.Groups["shard"].Value == shard.ToString(CultureInfo.InvariantCulture));
        var move = new RingMove
        {
            Label = label, Shard = shard, FromNode = from, ToNode = to,
            MoveMs = Ms(t1 - t0), Writes = window, IdleWindowP99s = writers.WindowP99s(_idle.From, _idle.To, t1 - t0),
            AddToInstalledMs = add.Line is not null && installed.Match is not null ? Ms(installed.At - add.At) : 0,
            SnapshotBytes = installed.Match is not null ? long.Parse(installed.Match.Groups["bytes"].Value, CultureInfo.InvariantCulture) : 0,
            StreamMs = installed.Match is not null ? double.Parse(installed.Match.Groups["stream"].Value, CultureInfo.InvariantCulture) : 0,
            StoreMs = installed.Match is not null ? double.Parse(installed.Match.Groups["store"].Value, CultureInfo.InvariantCulture) : 0,
            HeldMs = installed.Match is { } h && h.Groups["held"].Success ? double.Parse(h.Groups["held"].Value, CultureInfo.InvariantCulture) : 0,
            Note = add.Line is null ? "no AddLearner line seen" : installed.Match is null ? "no snapshot installed (caught up from the log)" : null,
        };
        Console.WriteLine($"{label} of shard {shard}: {move.MoveMs:N0} ms; snapshot {move.SnapshotBytes / 1e6:0.0} MB, AddLearner to installed {move.AddToInstalledMs:N0} ms ({move.SnapshotMBps:0.0} MB/s; first chunk after {move.FirstChunkMs:N0} ms, streamed {move.StreamMs:N0} ms = {move.StreamMBps:0.0} MB/s, stored {move.StoreMs:N0} ms, loop held at most {move.HeldMs:N0} ms){(move.Note is { } note ? $" [{note}]" : "")}");
        Console.WriteLine($"  writes during it: {Format(window)}");
        Console.WriteLine($"  idle p99 over windows as long: {string.Join(", ", move.IdleWindowP99s.Select(p => p.ToString("0.0", CultureInfo.InvariantCulture)))} ms (median {move.IdleWindowP99Median:0.0})");
        if (installed.Match is not null && move.StreamMs > 0)
        {
            // Which part of the move the slow writes fall in: before the first chunk, while streaming, while the target
            // stores the rows, after (promotion, removal). Phase bounds from the install line's time and its two durations.
            long perMs = Stopwatch.Frequency / 1000;
            long storeFrom = installed.At - (long)(move.StoreMs * perMs), streamFrom = storeFrom - (long)(move.StreamMs * perMs);
            foreach (var (phase, a, b) in new[] { ("before the stream", t0, streamFrom), ("streaming", streamFrom, storeFrom), ("storing", storeFrom, installed.At), ("after the install", installed.At, t1) })
                if (b > a) Console.WriteLine($"    {phase}: {Format(writers.Window(a, b))}");
        }
        return move;
    }

    [GeneratedRegex(@"node (?<node>\d+): shard (?<shard>\d+): snapshot at index \d+ from node \d+ installed: (?<bytes>\d+) bytes in \d+ chunks, streamed in (?<stream>\d+) ms, stored in (?<store>\d+) ms(, the loop held at most (?<held>\d+) ms)?")]
    private static partial Regex InstallLine();

    [GeneratedRegex(@": group (?<shard>\d+): proposed AddLearner\((?<member>\d+)\)")]
    private static partial Regex AddLearnerLine();

    /// <summary>
    /// The moved shard's rows copied out of the leader's state.db into a SQLite file (untimed), then that file copied on the
    /// same disk and fsynced (timed): the raw rate the snapshot is compared with. The file is rebuilt (untimed) with the page
    /// size state.db uses (KvStore.PageSize), so it holds the rows as the store does: with SQLite's default 4 KiB pages
    /// (ShardFile's), a row of a 1,000-byte value keeps about 490 bytes in its leaf and spills the rest into an overflow page
    /// of its own, and the file was 4.5 times the snapshot's bytes (150 MB for 33 MB): its copy was timed on other bytes
    /// than the snapshot's, and took 3-4 times as long as copying the rows' own pages would. That copy is still timed and
    /// shown (RawCopy4kMs), but the comparison is with the file in the store's own format (about 1.2 times the snapshot's
    /// bytes: B-tree pages and slack).
    /// </summary>
    private Task RawCopyAsync(ReplicationShard shard, RingResult result, CancellationToken ct) => Task.Run(() =>
    {
        string dir = Path.Combine(_folder, "rawcopy");
        Directory.CreateDirectory(dir);
        string source = Path.Combine(dir, "shard.db");
        int leader = Latest().Status.Shards.First(s => s.Id == shard.Id).Leader;
        // The leader's state.db, or the shard's own file (a node that keeps a file per shard: --store-layout shard).
        string state = KvStore.FileIn(_nodes[leader].Path, shard.Id) ?? throw new FileNotFoundException($"Node {leader} has no file of shard {shard.Id}.");
        ShardFile.CopyFromStateDb(state, shard.Id, source);
        (result.RawCopy4kBytes, result.RawCopy4kMs) = TimedCopy(source, Path.Combine(dir, "copy4k.db"));
        using (var conn = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={source};Pooling=False"))
        {
            conn.Open();
            using var rebuild = conn.CreateCommand();
            rebuild.CommandText = $"PRAGMA page_size={KvStore.PageSize.ToString(CultureInfo.InvariantCulture)}; VACUUM;";
            rebuild.ExecuteNonQuery();
        }
        (result.RawCopyBytes, result.RawCopyMs) = TimedCopy(source, Path.Combine(dir, "copy.db"));
        result.LoopbackSendMs = TimedLoopbackSend(source, Path.Combine(dir, "received.db"));
        (result.BackupImageBytes, result.BackupImageMs) = TimedBackupImage(source, Path.Combine(dir, "image.db"));
        Directory.Delete(dir, recursive: true);
        Console.WriteLine($"raw copy of shard {shard.Id} as a SQLite file of {KvStore.PageSize / 1024} KiB pages: {result.RawCopyBytes / 1e6:0.0} MB in {result.RawCopyMs:N0} ms ({result.RawCopyMBps:0} MB/s, fsync included); with 4 KiB pages {result.RawCopy4kBytes / 1e6:0.0} MB in {result.RawCopy4kMs:N0} ms; "
            + $"the same file over loopback {result.LoopbackSendMs:N0} ms, its image by SQLite's backup API {result.BackupImageMs:N0} ms");
    }, ct);

    /// <summary>
    /// The file sent over a loopback TCP connection (Socket.SendFile: sendfile(2)) to a receiver that writes it to
    /// <paramref name="received"/> through a 1 MiB buffer and fsyncs it: the time from the connect to the fsync's end. What a
    /// snapshot that ships a shard's own database file could reach (issue 9's streaming goal; today's snapshots are rows
    /// read from the shared state.db and inserted on the other side).
    /// </summary>
    private static double TimedLoopbackSend(string source, string received)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var watch = Stopwatch.StartNew();
        var receiver = Task.Run(() =>
        {
            using var connection = listener.Accept();
            using var file = new FileStream(received, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0);
            var buffer = new byte[1 << 20];
            int n;
            while ((n = connection.Receive(buffer)) > 0) file.Write(buffer, 0, n);
            file.Flush(flushToDisk: true);
        });
        using (var sender = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            sender.Connect((IPEndPoint)listener.LocalEndPoint!);
            sender.SendFile(source);
            sender.Shutdown(SocketShutdown.Send);
            if (!receiver.Wait(TimeSpan.FromSeconds(60))) throw new TimeoutException("the loopback copy took over 60 s");
        }
        double ms = watch.Elapsed.TotalMilliseconds;
        if (new FileInfo(received).Length != new FileInfo(source).Length) throw new InvalidOperationException("the loopback copy lost bytes");
        File.Delete(received);
        return ms;
    }

    /// <summary>
    /// A consistent image of the file taken with SQLite's online backup API (what a live database file needs before its
    /// bytes can be shipped while it is being written), fsynced: its bytes and the time taken.
    /// </summary>
    private static (long Bytes, double Ms) TimedBackupImage(string source, string image)
    {
        var watch = Stopwatch.StartNew();
        using (var from = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={source};Mode=ReadOnly;Pooling=False"))
        using (var to = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={image};Pooling=False"))
        {
            from.Open();
            to.Open();
            from.BackupDatabase(to);
        }
        using (var f = new FileStream(image, FileMode.Open, FileAccess.ReadWrite)) f.Flush(flushToDisk: true);
        double ms = watch.Elapsed.TotalMilliseconds;
        long bytes = new FileInfo(image).Length;
        File.Delete(image);
        return (bytes, ms);
    }

    /// <summary>Copies <paramref name="source"/> to <paramref name="copy"/> and fsyncs the copy: its bytes and the time taken.</summary>
    private static (long Bytes, double Ms) TimedCopy(string source, string copy)
    {
        var watch = Stopwatch.StartNew();
        File.Copy(source, copy);
        using (var f = new FileStream(copy, FileMode.Open, FileAccess.ReadWrite)) f.Flush(flushToDisk: true);
        double ms = watch.Elapsed.TotalMilliseconds;
        long bytes = new FileInfo(copy).Length;
        File.Delete(copy);
        return (bytes, ms);
    }

    /// <summary>Node <paramref name="n"/> stopped (cleanly, its stdin closed), the others left to re-elect and balance, then started again.</summary>
    private async Task<LeaderSettle> RestartAsync(int n, CancellationToken ct)
    {
        var node = _nodes[n];
        node.Process.Process.StandardInput.Close();
        await node.Process.Process.WaitForExitAsync(ct).WaitAsync(TimeSpan.FromSeconds(60), ct);
        node.Process.Dispose();
        await WaitSettledAsync(Stopwatch.GetTimestamp(), ct);
        return await ChangeAsync($"node {n} restarts", () => StartNodeAsync(n, node.Endpoint, null), ct);
    }

    /// <summary>Runs a change, then waits (bounded) until the leaderships have been balanced with no membership change for
    /// <see cref="SettledFor"/>, and measures the window from the samples and the balancer's log lines.</summary>
    private async Task<LeaderSettle> ChangeAsync(string change, Func<Task> act, CancellationToken ct)
    {
        long t0 = Stopwatch.GetTimestamp();
        await act();
        bool settled = await WaitSettledAsync(t0, ct);
        long t1 = Stopwatch.GetTimestamp();
        Sample[] window;
        Sample? baseline;
        lock (_samplesGate)
        {
            window = _samples.Where(s => s.At >= t0 && s.At <= t1).ToArray();
            baseline = _samples.LastOrDefault(s => s.At < t0);
        }
        long lastChange = t0;
        int leaderChanges = 0;
        var previous = baseline ?? window[0];
        foreach (var s in window)
        {
            if (s.Membership != previous.Membership || s.NodeStates != previous.NodeStates) lastChange = s.At;
            leaderChanges += s.Leaders.Count(l => previous.Leaders.TryGetValue(l.Key, out int was) && was != l.Value && l.Value != 0);
            previous = s;
        }
        long streak = t1;
        for (int i = window.Length - 1; i >= 0 && window[i].Balanced; i--) streak = window[i].At;
        var atChange = window.LastOrDefault(s => s.At <= lastChange) ?? window[0];
        var transfers = _log.Where(l => l.At >= t0 && l.At <= t1).Select(l => BalancingLine().Match(l.Line)).Where(m => m.Success).Select(m => m.Groups["shard"].Value).ToArray();
        var result = new LeaderSettle
        {
            Change = change,
            ChangeMs = Ms(lastChange - t0),
            SettleMs = Math.Max(0, Ms(streak - lastChange)),
            Settled = settled && window.Length > 0 && window[^1].Balanced,
            Transfers = transfers.Length,
            LowerBound = atChange.Excess,
            ShardsMovedTwice = transfers.GroupBy(s => s).Count(g => g.Count() > 1),
            LeaderChanges = leaderChanges,
            LeadersAfter = window.Length > 0 ? window[^1].Led : "",
        };
        Console.WriteLine($"{change}: change done after {result.ChangeMs:N0} ms; leaders {(result.Settled ? "settled" : "NOT settled")} {result.SettleMs:N0} ms after it; "
            + $"{result.Transfers} balancing transfers (least possible {result.LowerBound}), {result.ShardsMovedTwice} shards moved twice, {result.LeaderChanges} leader changes; led per node {result.LeadersAfter}");
        return result;
    }

    [GeneratedRegex(@"node \d+: shard (?<shard>\d+): leadership handed to node \d+ \(balancing\)")]
    private static partial Regex BalancingLine();

    /// <summary>True once the samples since <paramref name="since"/> end in a streak of <see cref="SettledFor"/> with
    /// balanced leaders and no membership or node-state change; false when the bound ran out first.</summary>
    private async Task<bool> WaitSettledAsync(long since, CancellationToken ct)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(MoveBound.TotalSeconds * Stopwatch.Frequency);
        long need = (long)(SettledFor.TotalSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline)
        {
            await Task.Delay(100, ct);
            lock (_samplesGate)
            {
                var recent = _samples.Where(s => s.At >= since).ToArray();
                if (recent.Length == 0) continue;
                var last = recent[^1];
                int i = recent.Length - 1;
                while (i > 0 && recent[i - 1].Balanced && recent[i - 1].Membership == last.Membership && recent[i - 1].NodeStates == last.NodeStates) i--;
                if (last.Balanced && last.At - recent[i].At >= need) return true;
            }
        }
        return false;
    }

    private async Task PollAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var status = await _admin!.StatusAsync(ct);
                var sample = Sample.Of(Stopwatch.GetTimestamp(), status);
                lock (_samplesGate) _samples.Add(sample);
            }
            catch (ReplicationException) { /* a node restarting: ask again */ }
            catch (IOException) { }
            await Task.Delay(50, ct);
        }
    }

    private Sample Latest()
    {
        lock (_samplesGate)
            return _samples.Count > 0 ? _samples[^1] : Sample.Of(Stopwatch.GetTimestamp(), _admin!.StatusAsync(CancellationToken.None).GetAwaiter().GetResult());
    }

    /// <summary>Reads every acknowledged key (linearizable), eight at a time; returns (found with the written value, not).</summary>
    private async Task<(long Found, long Missing)> ReadBackAsync(IReadOnlyList<(string Key, string Value)> acknowledged, CancellationToken ct)
    {
        long found = 0, missing = 0;
        int next = -1;
        var endpoints = _nodes.Where(n => !n.Value.Process.HasExited).Select(n => n.Value.Endpoint).ToArray();
        await Task.WhenAll(Enumerable.Range(0, 8).Select(c => Task.Run(async () =>
        {
            await using var client = await ClusterClient.ConnectAsync(endpoints.Skip(c % endpoints.Length).Concat(endpoints.Take(c % endpoints.Length)).ToArray(), _clusterSecret, "bench", cancellationToken: ct);
            int i;
            while ((i = Interlocked.Increment(ref next)) < acknowledged.Count)
            {
                var (key, value) = acknowledged[i];
                var record = await client.GetAsync(key, ReadConsistency.Linearizable, TimeSpan.FromSeconds(30), ct);
                if (record?.Value == value) Interlocked.Increment(ref found);
                else Interlocked.Increment(ref missing);
            }
        }, ct)));
        return (found, missing);
    }

    private static string Describe(ClusterStatus status) =>
        string.Join(" ", status.Shards.OrderBy(s => s.Id).Select(s => $"s{s.Id}:[{string.Join(",", s.Voters.Select(v => v == s.Leader ? $"*{v}" : v.ToString(CultureInfo.InvariantCulture)))}]"
            + (s.Learners.Count > 0 ? $"+[{string.Join(",", s.Learners)}]" : "")));

    private static string Format(LatencyWindow w) =>
        $"{w.Writes:N0} writes in {w.Seconds:0.0} s, p50 {w.P50:0.00} ms, p99 {w.P99:0.00} ms, max {w.Max:0.0} ms; moving shard: {w.ShardWrites:N0} writes, p50 {w.ShardP50:0.00} ms, p99 {w.ShardP99:0.00} ms; {w.Errors} errors";

    private static double Ms(long ticks) => Math.Round(ticks * 1000.0 / Stopwatch.Frequency, 1);

    /// <summary>One status poll, reduced to what the analysis compares.</summary>
    private sealed record Sample(long At, ClusterStatus Status, IReadOnlyDictionary<int, int> Leaders, string Membership, string NodeStates, bool Balanced, int Excess, string Led)
    {
        /// <summary>Balanced: every shard has a leader, and every running node that votes somewhere leads ⌊S/N⌋ or ⌈S/N⌉
        /// of the S shards (N such nodes), nobody else leading. Excess: leaderships above ⌈S/N⌉ or on a node that may
        /// not lead, the least number of transfers that could balance them.</summary>
        public static Sample Of(long at, ClusterStatus status)
        {
            var shards = status.Shards.OrderBy(s => s.Id).ToArray();
            var running = status.Nodes.Where(n => n.State == NodeState.Running).Select(n => n.Id).ToHashSet();
            var candidates = shards.SelectMany(s => s.Voters).Where(running.Contains).Distinct().Order().ToArray();
            var led = candidates.ToDictionary(id => id, id => shards.Count(s => s.Leader == id));
            int n = Math.Max(1, candidates.Length), lo = shards.Length / n, hi = (shards.Length + n - 1) / n;
            bool balanced = shards.All(s => s.Leader != 0 && led.ContainsKey(s.Leader)) && led.Values.All(c => c >= lo && c <= hi);
            int excess = led.Values.Sum(c => Math.Max(0, c - hi)) + shards.Count(s => s.Leader != 0 && !led.ContainsKey(s.Leader));
            return new Sample(at, status, shards.ToDictionary(s => s.Id, s => s.Leader),
                string.Join(";", shards.Select(s => $"{s.Id}:{string.Join(",", s.Voters.Order())}/{string.Join(",", s.Learners.Order())}")),
                string.Join(";", status.Nodes.OrderBy(x => x.Id).Select(x => $"{x.Id}:{x.State}")),
                balanced, excess, string.Join(" ", led.Select(kv => $"n{kv.Key}:{kv.Value}")));
        }
    }
}
