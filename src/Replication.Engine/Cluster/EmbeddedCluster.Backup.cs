using System.Diagnostics;
using Replication.Engine.Ring;
using Replication.Engine.Storage;

namespace Replication.Engine.Cluster;

/// <summary>
/// Hot and cold backups of an embedded cluster, and restore of a whole cluster from a backup.
/// File formats: <see cref="BackupManifest"/> (backup.json) and <see cref="ShardFile"/> (shard-NNNN.db).
/// </summary>
public sealed partial class EmbeddedCluster
{
    private const string HotActivity = "Backup-ReplicationCluster";
    private const string ColdActivity = "Backup-ReplicationNode";
    private const string RestoreActivity = "Restore-ReplicationCluster";

    public async Task<ReplicationBackup> BackupAsync(string path, IProgress<BackupProgress>? progress, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfRemoved();
        var watch = Stopwatch.StartNew();
        bool createdFolder = PrepareBackupFolder(path);
        var written = new List<string>();
        try
        {
            var created = DateTimeOffset.UtcNow;
            var shards = new List<BackupManifest.ShardEntry>();
            var files = new List<BackupManifest.FileEntry>();
            for (int s = 0; s < ShardCount; s++)
            {
                progress?.Report(new BackupProgress(HotActivity, $"shard {s}: confirming a linearizable read on its leader", s, ShardCount));
                var leader = await ConfirmReadAsync(s, ReadConsistency.Linearizable, timeout, cancellationToken).ConfigureAwait(false);
                string name = $"shard-{s:D4}.db";
                string target = System.IO.Path.Combine(path, name);
                progress?.Report(new BackupProgress(HotActivity, $"shard {s}: copying from node {leader.Id}", s, ShardCount));
                written.Add(target);
                string stateDb = System.IO.Path.Combine(leader.DataPath, "state.db");
                var content = await Task.Run(() => ShardFile.CopyFromStateDb(stateDb, s, target), cancellationToken).ConfigureAwait(false);
                shards.Add(new BackupManifest.ShardEntry(s, content.Index, content.Term, content.KeyCount, name, leader.Id));
                files.Add(BackupManifest.Describe(path, name));
            }
            progress?.Report(new BackupProgress(HotActivity, "writing backup.json", ShardCount, ShardCount));
            var manifest = new BackupManifest
            {
                Kind = BackupKind.Hot,
                ClusterId = Id,
                ClusterName = Name,
                NodeCount = _manifest.NodeCount,
                ShardCount = ShardCount,
                ReplicationFactor = ReplicationFactor,
                Created = created,
                Shards = shards,
                Files = files,
            }.Save(path);
            return manifest.ToBackup(path, watch.Elapsed, valid: null, problem: null);
        }
        catch
        {
            RemovePartialBackup(path, createdFolder, written);
            throw;
        }
    }

    public async Task<ReplicationBackup> BackupNodeColdAsync(int id, string path, IProgress<BackupProgress>? progress, CancellationToken cancellationToken)
    {
        ThrowIfRemoved();
        CheckNodeId(id);
        var watch = Stopwatch.StartNew();
        await _admin.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfRemoved();
            var host = _nodes[id - 1];
            var hosted = _placement.ShardsOn(id).ToArray();
            if (host is not null)
            {
                foreach (int s in hosted)
                {
                    var replicas = _placement.ReplicasOf(s);
                    int runningOthers = replicas.Count(r => r != id && _nodes[r - 1] is not null);
                    if (runningOthers < replicas.Count / 2 + 1) throw new QuorumAtRiskException(id, s) { Target = id };
                }
            }
            bool createdFolder = PrepareBackupFolder(path);
            var written = new List<string>();
            try
            {
                var created = DateTimeOffset.UtcNow;
                if (host is not null)
                {
                    progress?.Report(new BackupProgress(ColdActivity, $"stopping node {id} cleanly", 0, 4));
                    _nodes[id - 1] = null;
                    await host.StopAsync(kill: false).ConfigureAwait(false);
                }
                List<BackupManifest.FileEntry> files;
                IReadOnlyList<ShardFile.Content> contents;
                try
                {
                    string source = System.IO.Path.Combine(_options.Path, $"node-{id}");
                    files = new List<BackupManifest.FileEntry>();
                    foreach (var (file, step) in new[] { ("raft.db", 1), ("state.db", 2) })
                    {
                        progress?.Report(new BackupProgress(ColdActivity, $"copying {file} of node {id}", step, 4));
                        string target = System.IO.Path.Combine(path, file);
                        written.Add(target);
                        ShardFile.CopyDatabase(System.IO.Path.Combine(source, file), target);
                        files.Add(BackupManifest.Describe(path, file));
                    }
                    contents = ShardFile.InspectStateDb(System.IO.Path.Combine(path, "state.db"), hosted);
                }
                finally
                {
                    if (host is not null)
                    {
                        progress?.Report(new BackupProgress(ColdActivity, $"restarting node {id}", 3, 4));
                        await StartNodeCoreAsync(id, CancellationToken.None).ConfigureAwait(false);
                    }
                }
                var manifest = new BackupManifest
                {
                    Kind = BackupKind.Cold,
                    ClusterId = Id,
                    ClusterName = Name,
                    NodeCount = _manifest.NodeCount,
                    ShardCount = ShardCount,
                    ReplicationFactor = ReplicationFactor,
                    NodeId = id,
                    Created = created,
                    Shards = contents.Select(c => new BackupManifest.ShardEntry(c.Shard, c.Index, c.Term, c.KeyCount, "state.db", id)).ToList(),
                    Files = files,
                }.Save(path);
                progress?.Report(new BackupProgress(ColdActivity, "done", 4, 4));
                return manifest.ToBackup(path, watch.Elapsed, valid: null, problem: null);
            }
            catch
            {
                RemovePartialBackup(path, createdFolder, written);
                throw;
            }
        }
        finally
        {
            _admin.Release();
        }
    }

    public async Task RestoreNodeAsync(int id, string backupPath, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfRemoved();
        CheckNodeId(id);
        var m = BackupVerifier.Verify(backupPath, cancellationToken);
        if (m.Kind != BackupKind.Cold || m.NodeId != id || m.ClusterId != Id)
            throw new BackupPathException(BackupPathException.Mismatch, backupPath,
                $"'{backupPath}' is a {m.Kind.ToString().ToLowerInvariant()} backup of node {m.NodeId?.ToString() ?? "-"} of cluster {m.ClusterId}; restoring node {id} of cluster {Id} needs a cold backup of that node.") { Target = backupPath };
        await _admin.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfRemoved();
            var hosted = _placement.ShardsOn(id).ToArray();
            foreach (int s in hosted)
            {
                var replicas = _placement.ReplicasOf(s);
                if (replicas.Count(r => r != id && _nodes[r - 1] is not null) < replicas.Count / 2 + 1)
                    throw new QuorumAtRiskException(id, s) { Target = id };
            }
            if (_nodes[id - 1] is { } host)
            {
                _nodes[id - 1] = null;
                await host.StopAsync(kill: false).ConfigureAwait(false);
            }
            string folder = System.IO.Path.Combine(_options.Path, $"node-{id}");
            Directory.CreateDirectory(folder);
            foreach (var f in Directory.GetFiles(folder, "raft.db*").Concat(Directory.GetFiles(folder, "state.db*"))) File.Delete(f);
            File.Copy(System.IO.Path.Combine(backupPath, "raft.db"), System.IO.Path.Combine(folder, "raft.db"));
            File.Copy(System.IO.Path.Combine(backupPath, "state.db"), System.IO.Path.Combine(folder, "state.db"));

            DropUncommittedTail(folder, hosted);

            // The node now holds less than it once acknowledged. Its leaders notice from its
            // heartbeat answers and probe it from what it has (RaftNode.Replication.cs), so it
            // catches up like any lagging replica.
            await StartNodeCoreAsync(id, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _admin.Release();
        }
    }

    /// <summary>
    /// Cuts each shard's restored log back to the state machine's applied index. What the old copy
    /// applied was committed, so it can never conflict with the group's log; entries after it may have
    /// been overwritten since, and a leader that still remembers this node's old match would let it
    /// commit them. Without them the node only ever commits entries it receives anew.
    /// </summary>
    private static void DropUncommittedTail(string folder, IEnumerable<int> shards)
    {
        using var log = new RaftLogStore(System.IO.Path.Combine(folder, "raft.db"));
        using var kv = new KvStore(System.IO.Path.Combine(folder, "state.db"));
        foreach (int s in shards) log.TruncateAfter(s, kv.AppliedIndex(s));
    }

    /// <summary>
    /// Creates a NEW embedded cluster, with a fresh cluster id, holding exactly the data of the backup
    /// at <paramref name="backupPath"/>, and starts it. The backup is verified first (nothing is
    /// written if it is bad), <see cref="ClusterOptions.Path"/> must be new or empty, and the shard
    /// count is the backup's (keys hash to shards by it). Node count and replication factor default
    /// to the backup's. Each replica's state.db is seeded with its shards' rows (value and version
    /// kept, modified index 0) before the nodes start; Raft logs start empty at index 1, so the
    /// restored cluster's indexes begin again (see <see cref="ShardFile.Seed"/>). A cold backup can
    /// restore a whole cluster only if its node held every shard.
    /// </summary>
    /// <exception cref="BackupCorruptException">Verification failed; nothing was written.</exception>
    /// <exception cref="BackupPathException">No backup at the path, a cold backup lacking shards, or a target folder that is not empty.</exception>
    public static async Task<EmbeddedCluster> RestoreAsync(string backupPath, ClusterOptions options, IProgress<BackupProgress>? progress, CancellationToken cancellationToken)
    {
        progress?.Report(new BackupProgress(RestoreActivity, "verifying the backup", 0, 1));
        var m = BackupVerifier.Verify(backupPath, cancellationToken);
        var byShard = m.Shards.ToDictionary(s => s.Shard);
        for (int s = 0; s < m.ShardCount; s++)
            if (!byShard.ContainsKey(s))
                throw new BackupPathException(BackupPathException.Incomplete, backupPath,
                    $"The {m.Kind.ToString().ToLowerInvariant()} backup in '{backupPath}' has no data for shard {s}; a cluster restore needs every shard (a cold backup of a node that hosted them all, or a hot backup).");
        if (options.ShardCount is int asked && asked != m.ShardCount)
            throw new ClusterOptionsException(ClusterOptionsException.Invalid, $"The backup has {m.ShardCount} shards; a restore keeps the shard count (keys hash to shards by it), not {asked}.");
        if (string.IsNullOrWhiteSpace(options.Path))
            throw new ClusterOptionsException(ClusterOptionsException.Invalid, "A cluster needs a data folder.");
        if (Directory.Exists(options.Path) && Directory.EnumerateFileSystemEntries(options.Path).Any())
            throw new BackupPathException(BackupPathException.RestorePathInUse, options.Path,
                $"'{options.Path}' already holds files; a restore creates a new cluster in a new or empty folder.");

        int nodes = options.NodeCount ?? m.NodeCount;
        var o = options with
        {
            NodeCount = nodes,
            ShardCount = m.ShardCount,
            ReplicationFactor = options.ReplicationFactor ?? Math.Min(m.ReplicationFactor, nodes),
        };
        bool createdFolder = !Directory.Exists(o.Path);
        try
        {
            var manifest = LoadOrCreateManifest(o); // a fresh cluster id
            var placement = new Placement(manifest.Placement);
            for (int id = 1; id <= manifest.NodeCount; id++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                progress?.Report(new BackupProgress(RestoreActivity, $"seeding node {id}", id - 1, manifest.NodeCount + 1));
                string folder = System.IO.Path.Combine(o.Path, $"node-{id}");
                Directory.CreateDirectory(folder);
                string stateDb = System.IO.Path.Combine(folder, "state.db");
                using (new KvStore(stateDb)) { } // the schema, exactly as a node creates it
                foreach (int s in placement.ShardsOn(id))
                {
                    var entry = byShard[s];
                    string source = System.IO.Path.Combine(backupPath, entry.File);
                    long n = ShardFile.Seed(stateDb, s, source, m.Kind == BackupKind.Cold ? s : null);
                    if (n != entry.KeyCount)
                        throw new BackupCorruptException(source, $"'{source}' yielded {n} keys for shard {s}; the manifest says {entry.KeyCount}.");
                }
            }
            progress?.Report(new BackupProgress(RestoreActivity, "starting the nodes", manifest.NodeCount, manifest.NodeCount + 1));
            return await StartAsync(o, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            try
            {
                if (createdFolder) Directory.Delete(o.Path, recursive: true);
                else foreach (var e in new DirectoryInfo(o.Path).EnumerateFileSystemInfos()) DeleteEntry(e);
            }
            catch (IOException)
            {
                // best effort: the original error matters more
            }
            throw;
        }
    }

    /// <summary>Creates the folder or checks that it is empty; true when it was created here.</summary>
    private static bool PrepareBackupFolder(string path)
    {
        if (Directory.Exists(path))
        {
            if (Directory.EnumerateFileSystemEntries(path).Any())
                throw new BackupPathException(BackupPathException.PathInUse, path, $"'{path}' is not empty; a backup goes into a new or empty folder and never overwrites.") { Target = path };
            return false;
        }
        if (File.Exists(path))
            throw new BackupPathException(BackupPathException.PathInUse, path, $"'{path}' is a file; a backup needs a folder.") { Target = path };
        Directory.CreateDirectory(path);
        return true;
    }

    private static void RemovePartialBackup(string path, bool createdFolder, List<string> written)
    {
        try
        {
            foreach (var f in written) File.Delete(f);
            foreach (var f in written) File.Delete(f + "-journal");
            if (createdFolder && Directory.Exists(path) && !Directory.EnumerateFileSystemEntries(path).Any()) Directory.Delete(path);
        }
        catch (IOException)
        {
            // best effort: the original error matters more
        }
    }

    private static void DeleteEntry(FileSystemInfo e)
    {
        if (e is DirectoryInfo d) d.Delete(recursive: true);
        else e.Delete();
    }
}
