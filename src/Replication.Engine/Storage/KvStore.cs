using System.Globalization;
using Replication.Engine.Raft;

namespace Replication.Engine.Storage;

/// <summary>
/// The key-value state machine of every shard a node hosts (DESIGN.md, "Storage"), in one of two layouts
/// (<see cref="StoreLayout"/>): one SQLite file for the node (state.db), or a SQLite file per shard (shards/shard-N.db).
/// Each file is a <see cref="ShardDb"/>, which holds the contracts of the state machine (applies with the applied index in
/// one transaction, reads from any thread, snapshots, installs); this type routes each shard to its file and does what
/// spans files.
///
/// What the layout of a file per shard changes:
/// <list type="bullet">
/// <item>A shard's file is created by the first write to it (an apply, an install, an import); reads of a shard without a
/// file see nothing (applied index 0, no keys). A dropped shard's file is deleted, whole and at once.</item>
/// <item>Each shard's applies commit on their own: an apply batch (<see cref="BeginApplyBatch"/>) is one transaction per
/// file it touched, committed in turn, so a failure in the middle of <see cref="CommitApplyBatch"/> can leave the files
/// before it committed (<see cref="CommittedOfFailedBatch"/> names their shards). Each file has its own applied index, so
/// a restart replays each shard's log from its own.</item>
/// <item>A split founds the new shard in a file of its own (<see cref="Apply"/>): the right half's rows are copied into it,
/// made durable, before the old shard applies the split entry, which then only drops them. A split that founds a shard
/// cannot be applied inside an apply batch (the node loop never batches one).</item>
/// </list>
/// Threads: as <see cref="ShardDb"/>: writes from the node loop thread only, reads from any thread. Files are created and
/// deleted under a lock and published as a new map, so a read finds a shard's file without locking; a read that meets a
/// file deleted under it retries against the current map (the shard is then gone: nothing). Deleting a file that a
/// <see cref="Scan"/> still reads relies on POSIX unlink (the reader keeps the old file until it is disposed).
/// </summary>
public sealed class KvStore : IDisposable
{
    /// <summary>The page size of a new state file (<see cref="ShardDb.PageSize"/>).</summary>
    public const int PageSize = ShardDb.PageSize;

    /// <summary>The writer's page cache of the one state.db, in KiB (<see cref="ShardDb.WriterCacheKiB"/>).</summary>
    public const int WriterCacheKiB = ShardDb.WriterCacheKiB;

    /// <summary>The writer's page cache of each file of the layout of a file per shard, in KiB: pages are allocated as they are
    /// read, so a small shard uses little of it; a node's large shards share the memory one state.db's cache had.</summary>
    public const int ShardWriterCacheKiB = 16 * 1024;

    /// <summary>The folder of the shard files, under a node's data folder.</summary>
    public const string ShardFolderName = "shards";

    private readonly ShardDb? _single;
    private readonly string? _folder;
    private readonly object _gate = new();
    private volatile Dictionary<int, ShardDb> _dbs = new();
    private readonly HashSet<int> _notFounded = new();
    /// <summary>The one thread that runs every shard file's background checkpoints (the layout of a file per shard; null for
    /// one file per node, whose file has a thread of its own).</summary>
    private readonly CheckpointWorker? _checkpoints;
    private bool _disposed;

    /// <summary>Opens the layout of one file per node: state.db at <paramref name="filePath"/>, created if absent.</summary>
    /// <exception cref="StorageCorruptException">The file has an unknown schema version or belongs to another store.</exception>
    public KvStore(string filePath) : this(filePath, StoreLayout.FilePerNode) { }

    /// <summary>
    /// Opens a store of <paramref name="layout"/>: for <see cref="StoreLayout.FilePerNode"/> <paramref name="path"/> is the
    /// state.db file, for <see cref="StoreLayout.FilePerShard"/> the folder of the shard files (created if absent; every
    /// shard-N.db in it is opened, and what a crash left of a split's founding is removed).
    /// </summary>
    /// <exception cref="StorageCorruptException">A file has an unknown schema version or belongs to another store.</exception>
    public KvStore(string path, StoreLayout layout)
    {
        Layout = layout;
        Path = path;
        if (layout == StoreLayout.FilePerNode)
        {
            _single = new ShardDb(path, _notFounded.Contains);
            return;
        }
        _folder = path;
        Directory.CreateDirectory(path);
        _checkpoints = new CheckpointWorker();
        var dbs = new Dictionary<int, ShardDb>();
        try
        {
            foreach (var file in Directory.EnumerateFiles(path, "shard-*" + FoundingSuffix)) DeleteFiles(file); // never complete
            foreach (var file in Directory.EnumerateFiles(path, "shard-*" + DroppedSuffix + "*")) File.Delete(file); // a crash cut off their deletion
            foreach (var (shard, file) in ShardFilesIn(path)) dbs[shard] = OpenFile(file);
        }
        catch
        {
            foreach (var db in dbs.Values) db.Dispose();
            _checkpoints.Dispose();
            throw;
        }
        _dbs = dbs;
    }

    /// <summary>This store's layout.</summary>
    public StoreLayout Layout { get; }

    /// <summary>The state.db file, or the folder of the shard files.</summary>
    public string Path { get; }

    /// <summary>The file that holds <paramref name="shard"/> (state.db, or the shard's own file, which may not exist yet).</summary>
    public string FileOf(int shard) => _single?.FilePath ?? FilePath(shard);

    /// <summary>The layout of the state machine a node's data folder holds: state.db, or the shards folder; null when it holds
    /// none yet. The one reading of a folder's layout (a node's start, an embedded cluster's added nodes, cold copies, the
    /// storage check).</summary>
    /// <exception cref="StorageCorruptException">The folder holds both.</exception>
    public static StoreLayout? LayoutIn(string dataFolder)
    {
        bool single = File.Exists(System.IO.Path.Combine(dataFolder, "state.db"));
        bool shards = Directory.Exists(System.IO.Path.Combine(dataFolder, ShardFolderName));
        if (single && shards)
            throw new StorageCorruptException($"'{dataFolder}' holds both a state.db and a {ShardFolderName} folder; only one can be this node's state machine.");
        return single ? StoreLayout.FilePerNode : shards ? StoreLayout.FilePerShard : null;
    }

    /// <summary>The shard files of the shards folder <paramref name="shardsFolder"/> (shard-N.db; any other name is not one), in
    /// shard order.</summary>
    internal static IEnumerable<(int Shard, string File)> ShardFilesIn(string shardsFolder) =>
        Directory.EnumerateFiles(shardsFolder, "shard-*.db")
            .Select(file => (Shard: ShardOf(file), File: file))
            .Where(f => f.Shard is not null)
            .Select(f => (f.Shard!.Value, f.File))
            .OrderBy(f => f.Item1);

    /// <summary>The file that holds <paramref name="shard"/> in a node's data folder, or a copy of one (a cold backup), of either
    /// layout: its state.db, or the shard's own file in its shards folder; null when the folder has no file for the shard.</summary>
    public static string? FileIn(string folder, int shard)
    {
        string single = System.IO.Path.Combine(folder, "state.db");
        if (File.Exists(single)) return single;
        string own = System.IO.Path.Combine(folder, ShardFolderName, "shard-" + shard.ToString(CultureInfo.InvariantCulture) + ".db");
        return File.Exists(own) ? own : null;
    }

    /// <summary>The shards that have a file (the layout of a file per shard; none for one file per node).</summary>
    public IReadOnlyCollection<int> ShardsWithFiles => _dbs.Keys;

    /// <summary>A new file that <see cref="FoundShard"/> writes is named so until it is complete and renamed.</summary>
    private const string FoundingSuffix = ".db.founding";

    private string FilePath(int shard) =>
        System.IO.Path.Combine(_folder!, "shard-" + shard.ToString(CultureInfo.InvariantCulture) + ".db");

    /// <summary>The shard a file of the shards folder holds, by its name (shard-N.db); null for any other name.</summary>
    private static int? ShardOf(string file)
    {
        string name = System.IO.Path.GetFileNameWithoutExtension(file);
        return int.TryParse(name.AsSpan("shard-".Length), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int shard)
            && name == "shard-" + shard.ToString(CultureInfo.InvariantCulture) ? shard : null;
    }

    /// <summary>A file of the layout of a file per shard: it never founds another shard inside itself (the store does, in a
    /// file of that shard's own: <see cref="Apply"/>).</summary>
    private ShardDb OpenFile(string file) => new(file, _ => true, ShardWriterCacheKiB, _checkpoints);

    // ---- routing ----

    /// <summary>The file of <paramref name="shard"/>, or null when it has none (the layout of a file per shard). Thread-safe.</summary>
    private ShardDb? Find(int shard)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _single ?? _dbs.GetValueOrDefault(shard);
    }

    /// <summary>The file of <paramref name="shard"/>, created when it has none. Thread-safe.</summary>
    private ShardDb Open(int shard)
    {
        if (Find(shard) is { } db) return db;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_dbs.TryGetValue(shard, out var existing)) return existing;
            var created = OpenFile(FilePath(shard));
            _dbs = new Dictionary<int, ShardDb>(_dbs) { [shard] = created };
            return created;
        }
    }

    /// <summary>Deletes the file of <paramref name="shard"/> (the layout of a file per shard; <see cref="Retire"/>). Loop thread only.</summary>
    private void DeleteFile(int shard)
    {
        lock (_gate)
        {
            if (!_dbs.TryGetValue(shard, out var db)) return;
            var next = new Dictionary<int, ShardDb>(_dbs);
            next.Remove(shard);
            _dbs = next;
            Retire(db);
        }
    }

    /// <summary>
    /// Closes a shard's file that is no longer the shard's (dropped, or replaced by an image) and deletes it, without
    /// holding the caller long: it is closed without a last checkpoint (<see cref="ShardDb.Discard"/>) and its files are
    /// renamed out of the way at once (the WAL first: never a WAL without its file, and never one left under the name the
    /// shard's next file takes), and their blocks are freed by a thread of the pool afterwards. Unlinking a 40 MB file held
    /// the node's loop 15-24 ms, and closing it with a checkpoint another 10-20 ms, on every node a replica left (ring
    /// bench, 2026-12-03). A crash before the deletion leaves the renamed files, which the next open deletes; the shard's
    /// rows are gone with the rename as they were with a delete (a drop makes the log's tombstone durable first:
    /// NodeHost.ReplaceGroupDataAsync). Under <see cref="_gate"/>.
    /// </summary>
    private void Retire(ShardDb db)
    {
        db.Discard();
        string dropped = DroppedSuffix + Guid.NewGuid().ToString("N");
        var renamed = new List<string>(3);
        foreach (var suffix in WalFirst)
        {
            string file = db.FilePath + suffix;
            if (!File.Exists(file)) continue;
            File.Move(file, file + dropped);
            renamed.Add(file + dropped);
        }
        _deleting = _deleting.ContinueWith(_ =>
        {
            foreach (var file in renamed)
            {
                try { File.Delete(file); }
                catch (IOException) { } // left for the next open
                catch (UnauthorizedAccessException) { }
            }
        }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
    }

    /// <summary>A retired shard file's files are renamed with this suffix (and a unique tail) until they are deleted (<see cref="Retire"/>).</summary>
    private const string DroppedSuffix = ".dropped-";

    /// <summary>The deletions of retired shard files, in turn, off the loop (<see cref="Retire"/>); the store's
    /// <see cref="Dispose"/> waits for them.</summary>
    private Task _deleting = Task.CompletedTask;

    /// <summary>The suffixes of a SQLite file's files, in the order they go (deleted or renamed away): the WAL first, so that
    /// a WAL never lies without its file.</summary>
    private static readonly string[] WalFirst = ["-wal", "-shm", ""];

    private static void DeleteFiles(string file)
    {
        foreach (var suffix in WalFirst) File.Delete(file + suffix);
    }

    /// <summary>A read of <paramref name="shard"/>: <paramref name="read"/> on its file, or <paramref name="none"/> when it has
    /// none, or when its file was deleted while the read ran (the shard is then gone). Thread-safe.</summary>
    private T Read<T>(int shard, Func<ShardDb, T> read, T none)
    {
        while (true)
        {
            if (Find(shard) is not { } db) return none;
            try
            {
                return read(db);
            }
            catch (ObjectDisposedException) when (!_disposed && !ReferenceEquals(Find(shard), db))
            {
                // deleted meanwhile: ask the current map again
            }
        }
    }

    // ---- applying ----

    /// <summary>
    /// See <see cref="ShardDb.Apply"/>. In the layout of a file per shard, a split entry that founds the new shard here
    /// (its old shard's range still whole, this node one of its founding replicas: <see cref="ForgoSplitFounding"/>, and no
    /// file of it yet) is applied in three steps: the entries before it, committed; the new shard's file founded from the
    /// right half of those rows (<see cref="ShardDb.FoundFromSplit"/>), durable; then the split and the entries after it.
    /// </summary>
    /// <exception cref="InvalidOperationException">A split that founds a shard inside an apply batch (file per shard).</exception>
    public IReadOnlyList<EntryApplyResult> Apply(int shard, IReadOnlyList<LogEntry> entries)
    {
        if (_single is { } one) return one.Apply(shard, entries);
        var db = Open(shard);
        JoinBatch(db);
        var results = new List<EntryApplyResult>();
        int from = 0;
        while (NextSplit(db, shard, entries, from) is var (at, split))
        {
            bool founds = !_notFounded.Contains(split.NewShard) && Find(split.NewShard) is null;
            if (founds && _batch is not null)
                throw new InvalidOperationException($"Shard {shard}: the split at entry {entries[at].Index} founds shard {split.NewShard}, which cannot be applied inside an apply batch.");
            results.AddRange(db.Apply(shard, Slice(entries, from, at)));
            if (founds) FoundShard(db, shard, split);
            results.AddRange(db.Apply(shard, Slice(entries, at, at + 1)));
            from = at + 1;
        }
        results.AddRange(db.Apply(shard, Slice(entries, from, entries.Count)));
        return results;
    }

    private static IReadOnlyList<LogEntry> Slice(IReadOnlyList<LogEntry> entries, int from, int to) =>
        from == 0 && to == entries.Count ? entries : entries.Skip(from).Take(to - from).ToList();

    /// <summary>The first entry from <paramref name="from"/> on, not applied yet, that splits <paramref name="shard"/> given its
    /// ranges as committed (<see cref="ShardDb.SplitApplies"/>), with its command; null when none. An entry that does not
    /// decode is left to the apply, which refuses it.
    /// The applied index is read (a query on a reader) only when an entry is a shard command: nearly every apply has none.</summary>
    private static (int At, ShardCommand Split)? NextSplit(ShardDb db, int shard, IReadOnlyList<LogEntry> entries, int from)
    {
        long? applied = null;
        for (int i = from; i < entries.Count; i++)
        {
            var e = entries[i];
            if (e.Type != EntryType.Normal || !ShardCommand.IsShardCommand(e.Data)) continue;
            if (e.Index <= (applied ??= db.AppliedIndex(shard))) continue;
            ShardCommand command;
            try { command = ShardCommand.Decode(e.Data); }
            catch (StorageCorruptException) { return null; }
            if (ShardDb.SplitApplies(db.SplitRanges, shard, command)) return (i, command);
        }
        return null;
    }

    /// <summary>Writes the file of <paramref name="split"/>'s new shard from <paramref name="db"/>'s committed rows under a
    /// temporary name, complete and durable, then gives it its name (a crash before leaves no file of the shard; the
    /// temporary file is deleted at the next open) and opens it.</summary>
    private void FoundShard(ShardDb db, int shard, ShardCommand split)
    {
        string target = FilePath(split.NewShard);
        string temporary = target[..^".db".Length] + FoundingSuffix;
        DeleteFiles(temporary);
        using (var founding = OpenFile(temporary))
            founding.FoundFromSplit(db.FilePath, shard, split);
        // Disposed: the last connection checkpointed the WAL into the file and removed it, so the file is whole alone.
        File.Move(temporary, target);
        SyncFolder();
        Open(split.NewShard);
    }

    /// <summary>Makes the folder's entries durable (a rename or a new file): fsync(2) of the folder, which .NET cannot open as a
    /// file. Windows journals NTFS metadata and cannot open a folder for this: nothing to do there.</summary>
    private void SyncFolder()
    {
        if (OperatingSystem.IsWindows()) return;
        int fd = Posix.open(_folder!, 0 /* O_RDONLY */);
        if (fd < 0) throw new IOException($"Cannot open '{_folder}' to sync it (errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}).");
        try
        {
            if (Posix.fsync(fd) != 0) throw new IOException($"fsync of '{_folder}' failed (errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}).");
        }
        finally
        {
            Posix.close(fd);
        }
    }

    private static class Posix
    {
        [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
        public static extern int open([System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string path, int flags);

        [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
        public static extern int fsync(int fd);

        [System.Runtime.InteropServices.DllImport("libc")]
        public static extern int close(int fd);
    }

    /// <summary>
    /// The split that creates <paramref name="newShard"/> founds no replica of it here when it applies: this node's replica
    /// of the old shard was none of the old shard's replicas at the split's index (it joined later and replays the log),
    /// so it is none of the new shard's founding replicas either (NodeHost.CreateSplitGroups). The old shard still splits
    /// here. Kept in memory only: after a restart the replay asks again before it applies. Loop thread only.
    /// </summary>
    public void ForgoSplitFounding(int newShard) => _notFounded.Add(newShard);

    // ---- apply batches ----

    /// <summary>The files the open batch touched, in order; null when no batch is open (file per shard).</summary>
    private List<ShardDb>? _batch;

    /// <summary>The shards whose files the last <see cref="CommitApplyBatch"/> that failed had committed before it failed (file
    /// per shard; always none for one file per node, whose batch is one transaction).</summary>
    public IReadOnlyCollection<int> CommittedOfFailedBatch { get; private set; } = [];

    /// <summary>See <see cref="ShardDb.BeginApplyBatch"/>: in the layout of a file per shard, each file the batch touches
    /// opens a transaction of its own at its first apply.</summary>
    public void BeginApplyBatch()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_single is { } one)
        {
            one.BeginApplyBatch();
            return;
        }
        if (_batch is not null) throw new InvalidOperationException("An apply batch is already open.");
        _batch = new List<ShardDb>();
        CommittedOfFailedBatch = [];
    }

    private void JoinBatch(ShardDb db)
    {
        if (_batch is null || _batch.Contains(db)) return;
        db.BeginApplyBatch();
        _batch.Add(db);
    }

    /// <summary>See <see cref="ShardDb.CommitApplyBatch"/>. In the layout of a file per shard the files commit in turn; when one
    /// fails, the rest are rolled back, and <see cref="CommittedOfFailedBatch"/> names the shards committed before it.</summary>
    public void CommitApplyBatch()
    {
        if (_single is { } one)
        {
            one.CommitApplyBatch();
            return;
        }
        if (_batch is not { } batch) return;
        _batch = null;
        var committed = new List<int>();
        for (int i = 0; i < batch.Count; i++)
        {
            try
            {
                batch[i].CommitApplyBatch();
                committed.AddRange(ShardsOf(batch[i]));
            }
            catch
            {
                for (int j = i + 1; j < batch.Count; j++) batch[j].RollbackApplyBatch();
                CommittedOfFailedBatch = committed;
                throw;
            }
        }
    }

    private IEnumerable<int> ShardsOf(ShardDb db)
    {
        foreach (var (shard, file) in _dbs)
            if (ReferenceEquals(file, db)) yield return shard;
    }

    /// <summary>See <see cref="ShardDb.RollbackApplyBatch"/>.</summary>
    public void RollbackApplyBatch()
    {
        if (_single is { } one)
        {
            one.RollbackApplyBatch();
            return;
        }
        if (_batch is not { } batch) return;
        _batch = null;
        foreach (var db in batch) db.RollbackApplyBatch();
    }

    /// <summary>See <see cref="ShardDb.SplitApplies"/>.</summary>
    public static bool SplitApplies(IReadOnlyDictionary<int, (ulong Start, ulong Last)> ranges, int shard, ShardCommand split) =>
        ShardDb.SplitApplies(ranges, shard, split);

    // ---- reads ----

    /// <summary>See <see cref="ShardDb.AppliedIndex"/>.</summary>
    public long AppliedIndex(int shard) => Read(shard, db => db.AppliedIndex(shard), 0L);

    /// <summary>See <see cref="ShardDb.AppliedTerm"/>.</summary>
    public long AppliedTerm(int shard) => Read(shard, db => db.AppliedTerm(shard), 0L);

    /// <summary>See <see cref="ShardDb.Get"/>.</summary>
    public StoredKey? Get(int shard, string key)
    {
        KvLimits.Validate(key, null);
        return Read(shard, db => db.Get(shard, key), null);
    }

    /// <summary>See <see cref="ShardDb.Scan"/>.</summary>
    public IEnumerable<StoredKey> Scan(int shard, string prefix)
    {
        KvLimits.ValidatePrefix(prefix);
        return Read(shard, db => db.Scan(shard, prefix), []);
    }

    /// <summary>See <see cref="ShardDb.ScanAfter"/>.</summary>
    public IEnumerable<StoredKey> ScanAfter(int shard, string prefix, string? after)
    {
        KvLimits.ValidatePrefix(prefix);
        return Read(shard, db => db.ScanAfter(shard, prefix, after), []);
    }

    /// <summary>See <see cref="ShardDb.Count"/>.</summary>
    public long Count(int shard) => Read(shard, db => db.Count(shard), 0L);

    /// <summary>Bytes the store occupies: every file's pages plus its current WAL (a file deleted meanwhile counts nothing).</summary>
    public long SizeBytes()
    {
        if (_single is { } one) return one.SizeBytes();
        long bytes = 0;
        foreach (var db in _dbs.Values)
        {
            try { bytes += db.SizeBytes(); }
            catch (ObjectDisposedException) when (!_disposed) { }
        }
        return bytes;
    }

    /// <summary>See <see cref="ShardDb.RangeOf"/>.</summary>
    public (ulong Start, ulong Last)? RangeOf(int shard) => Find(shard)?.RangeOf(shard);

    /// <summary>See <see cref="ShardDb.Owns"/>: a shard without a file owns every key routed to it.</summary>
    public bool Owns(int shard, string key) => Find(shard)?.Owns(shard, key) ?? true;

    /// <summary>See <see cref="ShardDb.SplitRanges"/>: over every file.</summary>
    public IReadOnlyDictionary<int, (ulong Start, ulong Last)> SplitRanges
    {
        get
        {
            if (_single is { } one) return one.SplitRanges;
            var ranges = new Dictionary<int, (ulong Start, ulong Last)>();
            foreach (var (shard, db) in _dbs)
                if (db.RangeOf(shard) is { } r) ranges[shard] = r;
            return ranges;
        }
    }

    /// <summary>See <see cref="ShardDb.CompareKeys"/>.</summary>
    public static int CompareKeys(string a, string b) => ShardDb.CompareKeys(a, b);

    // ---- snapshots, installs, drops ----

    /// <summary>
    /// A consistent view of <paramref name="shard"/> to send as a snapshot: its rows (<see cref="ShardDb.OpenSnapshot"/>), or, in
    /// the layout of a file per shard, an image of its file (<see cref="ShardSnapshotReader.OpenImage"/>), which the receiver
    /// puts in place of its own (<see cref="InstallImage"/>). An image holds exactly the state its Index names only when no
    /// apply runs meanwhile: call this on the node loop, between applies.
    /// </summary>
    public ShardSnapshotReader OpenSnapshot(int shard)
    {
        var db = Open(shard);
        return _single is null ? ShardSnapshotReader.OpenImage(db.FilePath, shard) : db.OpenSnapshot(shard);
    }

    /// <summary>
    /// Puts the snapshot image at <paramref name="imagePath"/> (a complete, self-contained state file that
    /// <see cref="ShardImageWriter.Complete"/> left) in place of <paramref name="shard"/>'s state, checked to hold that shard at
    /// exactly <paramref name="index"/> and <paramref name="term"/>, durable when this returns; the image file is gone then.
    /// In the layout of a file per shard the image becomes the shard's file: the old file is closed, its WAL removed, and the
    /// image renamed over it (one rename: a crash leaves the old file or the new one). In the layout of one file per node the
    /// image's rows are imported into state.db (<see cref="ShardDb.ImportShard"/>: one transaction, a row copy). Loop thread
    /// only; nothing may apply to the shard meanwhile.
    /// </summary>
    /// <exception cref="StorageCorruptException">The image does not hold the shard at that index and term; nothing changed.</exception>
    public void InstallImage(int shard, string imagePath, long index, long term)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using (var image = ShardSnapshotReader.OpenImage(imagePath, shard))
            if (image.Index != index || image.Term != term)
                throw new StorageCorruptException($"The snapshot image of shard {shard} holds index {image.Index} (term {image.Term}), not the {index} (term {term}) it was sent as.") { Target = shard };
        if (_single is { } one)
        {
            one.ImportShard(shard, imagePath);
            DeleteFiles(imagePath);
            return;
        }
        lock (_gate)
        {
            string target = FilePath(shard);
            if (_dbs.TryGetValue(shard, out var old))
            {
                var next = new Dictionary<int, ShardDb>(_dbs);
                next.Remove(shard);
                _dbs = next;
                Retire(old); // renamed away with its WAL, deleted off the loop
            }
            // The old file's WAL must never meet the new file: SQLite would replay its frames over it.
            File.Delete(target + "-wal");
            File.Delete(target + "-shm");
            File.Move(imagePath, target, overwrite: true);
            SyncFolder();
            _dbs = new Dictionary<int, ShardDb>(_dbs) { [shard] = OpenFile(target) };
        }
    }

    /// <summary>See <see cref="ShardDb.InstallSnapshot"/>.</summary>
    public void InstallSnapshot(int shard, long index, long term, (ulong Start, ulong Last)? range, IEnumerable<byte[]> chunks) =>
        Open(shard).InstallSnapshot(shard, index, term, range, chunks);

    /// <summary>See <see cref="ShardDb.InstallSnapshotRows"/>.</summary>
    public void InstallSnapshotRows(int shard, long index, long term, ReadOnlyMemory<byte> chunk, bool first) =>
        Open(shard).InstallSnapshotRows(shard, index, term, chunk, first);

    /// <summary>See <see cref="ShardDb.CompleteSnapshotInstall"/>.</summary>
    public void CompleteSnapshotInstall(int shard, long index, long term, (ulong Start, ulong Last)? range) =>
        Open(shard).CompleteSnapshotInstall(shard, index, term, range);

    /// <summary>See <see cref="ShardDb.StageSnapshotRows"/>.</summary>
    public void StageSnapshotRows(int shard, long index, long term, ReadOnlyMemory<byte> chunk, bool first) =>
        Open(shard).StageSnapshotRows(shard, index, term, chunk, first);

    /// <summary>See <see cref="ShardDb.BeginStagedSwap"/>.</summary>
    public void BeginStagedSwap(int shard, long index, long term, (ulong Start, ulong Last)? range) =>
        Open(shard).BeginStagedSwap(shard, index, term, range);

    /// <summary>See <see cref="ShardDb.SwapStagedRows"/>.</summary>
    public bool SwapStagedRows(int shard, int maxKeys) => Open(shard).SwapStagedRows(shard, maxKeys);

    /// <summary>See <see cref="ShardDb.DropStaged"/>.</summary>
    public void DropStaged(int shard) => Find(shard)?.DropStaged(shard);

    /// <summary>See <see cref="ShardDb.FinishStagedInstalls"/>: over every file.</summary>
    public (IReadOnlyList<int> Dropped, IReadOnlyList<int> Completed) FinishStagedInstalls()
    {
        if (_single is { } one) return one.FinishStagedInstalls();
        var dropped = new List<int>();
        var completed = new List<int>();
        foreach (var db in _dbs.Values)
        {
            var (d, c) = db.FinishStagedInstalls();
            dropped.AddRange(d);
            completed.AddRange(c);
        }
        return (dropped, completed);
    }

    /// <summary>See <see cref="ShardDb.DiscardPartialInstalls"/>: over every file; in the layout of a file per shard the file of
    /// a shard it discards goes with it.</summary>
    public IReadOnlyList<(int Shard, bool Drop)> DiscardPartialInstalls()
    {
        if (_single is { } one) return one.DiscardPartialInstalls();
        var discarded = new List<(int Shard, bool Drop)>();
        foreach (var (shard, db) in _dbs.ToArray())
        {
            var found = db.DiscardPartialInstalls();
            discarded.AddRange(found);
            if (found.Count > 0) DeleteFile(shard);
        }
        return discarded;
    }

    /// <summary>See <see cref="ShardDb.DropShard"/>; in the layout of a file per shard, the shard's file is deleted.</summary>
    public void DropShard(int shard)
    {
        if (_single is { } one) one.DropShard(shard);
        else DeleteFile(shard);
    }

    /// <summary>See <see cref="ShardDb.BeginDropShard"/>; in the layout of a file per shard the shard's file is deleted at once
    /// (<see cref="DropShardRows"/> then has nothing left to do).</summary>
    public void BeginDropShard(int shard)
    {
        if (_single is { } one) one.BeginDropShard(shard);
        else DeleteFile(shard);
    }

    /// <summary>See <see cref="ShardDb.DropShardRows"/>.</summary>
    public bool DropShardRows(int shard, int rows) => _single?.DropShardRows(shard, rows) ?? true;

    /// <summary>See <see cref="ShardDb.ImportShard"/>.</summary>
    public long ImportShard(int shard, string sourceStateDb) => Open(shard).ImportShard(shard, sourceStateDb);

    /// <summary>See <see cref="ShardDb.Flush"/>: every file.</summary>
    public void Flush()
    {
        foreach (var db in Files()) db.Flush();
    }

    // ---- checkpoints while a snapshot is stored ----

    /// <summary>See <see cref="ShardDb.PauseAutoCheckpoint"/>: every file.</summary>
    public void PauseAutoCheckpoint()
    {
        foreach (var db in Files()) db.PauseAutoCheckpoint();
    }

    /// <summary>See <see cref="ShardDb.NudgeCheckpoint"/>: every file.</summary>
    public void NudgeCheckpoint()
    {
        foreach (var db in Files()) db.NudgeCheckpoint();
    }

    /// <summary>See <see cref="ShardDb.ResumeAutoCheckpoint"/>: every file.</summary>
    public void ResumeAutoCheckpoint()
    {
        foreach (var db in Files()) db.ResumeAutoCheckpoint();
    }

    private readonly Dictionary<long, List<(ShardDb Db, long Ticket)>> _tickets = new();
    private long _nextTicket;

    /// <summary>See <see cref="ShardDb.RequestCheckpoint"/>: a pass of every file; the ticket for <see cref="CheckpointDone"/>.</summary>
    public long RequestCheckpoint()
    {
        if (_single is { } one) return one.RequestCheckpoint();
        var passes = Files().Select(db => (db, db.RequestCheckpoint())).ToList();
        _tickets[++_nextTicket] = passes;
        return _nextTicket;
    }

    /// <summary>See <see cref="ShardDb.CheckpointDone"/>: every file's pass of <paramref name="ticket"/> ended (a file deleted
    /// since counts as done).</summary>
    public bool CheckpointDone(long ticket, TimeSpan wait)
    {
        if (_single is { } one) return one.CheckpointDone(ticket, wait);
        if (!_tickets.TryGetValue(ticket, out var passes)) return true;
        foreach (var (db, t) in passes)
        {
            if (!_dbs.Values.Contains(db)) continue;
            if (!db.CheckpointDone(t, wait)) return false;
        }
        _tickets.Remove(ticket);
        return true;
    }

    // ---- checks ----

    /// <summary>See <see cref="ShardDb.CheckIntegrity"/>: every file.</summary>
    public void CheckIntegrity()
    {
        foreach (var db in Files()) db.CheckIntegrity();
    }

    /// <summary>See <see cref="ShardDb.Probe"/>: every file (none yet: nothing to probe).</summary>
    public void Probe()
    {
        foreach (var db in Files()) db.Probe();
    }

    private IEnumerable<ShardDb> Files()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _single is { } one ? [one] : _dbs.Values;
    }

    // ---- the one file's internals, for tests ----

    private ShardDb Single => _single ?? throw new InvalidOperationException("This store keeps a file per shard.");

    /// <summary>Background WAL checkpoint passes run so far (tests; one file per node).</summary>
    internal long CheckpointPasses => Single.CheckpointPasses;

    /// <summary>Waits (bounded) until the checkpointing thread has run a pass (tests; one file per node).</summary>
    internal bool WaitForCheckpointPass(TimeSpan bound) => Single.WaitForCheckpointPass(bound);

    /// <summary>Background WAL checkpoint passes run so far on <paramref name="shard"/>'s file, and a bounded wait for its
    /// first (tests; a file per shard).</summary>
    internal bool WaitForCheckpointPassOf(int shard, TimeSpan bound) => Find(shard)?.WaitForCheckpointPass(bound) ?? false;

    /// <summary>Threads the shared checkpoint worker has started (tests; a file per shard: at most one).</summary>
    internal int CheckpointThreadsStarted => _checkpoints?.ThreadsStarted ?? 0;

    /// <summary>A pragma's value on the writer connection (tests; one file per node).</summary>
    internal string WriterPragma(string name) => Single.WriterPragma(name);

    /// <summary>The writer's auto-checkpoint threshold in pages (tests; one file per node).</summary>
    internal long WriterAutoCheckpointPages => Single.WriterAutoCheckpointPages;

    /// <summary>Closes every file (see <see cref="ShardDb.Dispose"/>).</summary>
    public void Dispose()
    {
        Task deleting;
        lock (_gate)
        {
            deleting = _deleting;
            if (_disposed) return;
            _disposed = true;
            _single?.Dispose();
            foreach (var db in _dbs.Values) db.Dispose();
            _checkpoints?.Dispose(); // after the files: each waited for its own pass under way
        }
        deleting.Wait(); // file deletions: nothing a test's cleanup or the next open could trip over
    }
}
