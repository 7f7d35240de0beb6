using System.Diagnostics;
using Replication.Engine.Cluster;
using Replication.Engine.Storage;

namespace Replication.Engine.Client;

/// <summary>
/// Backups and restores, client side: what travels is rows (hot backups, loads) and files (cold backups, node
/// restores), streamed in bounded chunks, each checked by the frame CRC and, as a whole, by SHA-256; the
/// nodes do the rest (Cluster/ClusterNode.Backup.cs, ClusterNode.Rebuild.cs). The backup format is the one
/// described in the README ("Backup and restore"); a backup taken from any shape restores into any shape.
/// </summary>
public partial class ClusterClient
{
    private const string HotActivity = "Backup-ReplicationCluster";
    private const string ColdActivity = "Backup-ReplicationNode";
    private const string RestoreActivity = "Restore-ReplicationCluster";
    private const string NodeRestoreActivity = "Restore-ReplicationNode";
    private const int RowsPerRead = 5_000;
    private const int FileChunk = 1 << 20;
    private const int LoadBatch = 1_000;

    public async Task<ReplicationBackup> BackupAsync(string path, IProgress<BackupProgress>? progress, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        var watch = Stopwatch.StartNew();
        bool createdFolder = Backups.PrepareFolder(path);
        var written = new List<string>();
        BackupTicket? ticket = null;
        try
        {
            progress?.Report(new BackupProgress(HotActivity, "taking a consistent cut of every shard", 0, ShardCount + 1));
            (ticket, _) = await AdminAsync<BackupTicket>(AdminOps.BackupBegin, 0, new TimeoutArgs((long)timeout.TotalMilliseconds), timeout, cancellationToken).ConfigureAwait(false);
            var shards = new List<BackupManifest.ShardEntry>();
            var files = new List<BackupManifest.FileEntry>();
            long keysDone = 0, keysTotal = ticket.Shards.Sum(s => s.KeyCount);
            for (int i = 0; i < ticket.Shards.Count; i++)
            {
                var s = ticket.Shards[i];
                string name = $"shard-{s.Shard:D4}.db";
                string target = System.IO.Path.Combine(path, name);
                written.Add(target);
                using (var writer = new ShardFile.Writer(target))
                using (var digest = new RowDigest.Builder())
                {
                    string? after = null;
                    while (true)
                    {
                        var (page, blob) = await AdminAsync<ReadAnswer>(AdminOps.BackupRead, s.Node, new ReadArgs(ticket.CutId, s.Shard, after, RowsPerRead), _options.RequestTimeout, cancellationToken).ConfigureAwait(false);
                        var rows = SnapshotChunkCodec.Decode(blob.Span);
                        foreach (var row in rows)
                        {
                            writer.Add(row);
                            digest.Add(row);
                        }
                        keysDone += rows.Count;
                        if (rows.Count > 0) after = rows[^1].Key;
                        progress?.Report(new BackupProgress(HotActivity, $"shard {s.Shard}: {digest.Count:N0} of {s.KeyCount:N0} keys from node {s.Node}", i + 1, ticket.Shards.Count + 1,
                            keysTotal == 0 ? null : (int)(100 * keysDone / keysTotal)));
                        if (page.Done) break;
                    }
                    string sha = digest.Finish();
                    if (digest.Count != s.KeyCount || sha != s.Sha256)
                        throw new BackupCorruptException(target, $"Shard {s.Shard} arrived with {digest.Count} keys and SHA-256 {sha}; node {s.Node} holds {s.KeyCount} keys with SHA-256 {s.Sha256}.");
                    writer.Complete(s.Shard, s.Index, s.Term);
                }
                shards.Add(new BackupManifest.ShardEntry(s.Shard, s.Index, s.Term, s.KeyCount, name, s.Node));
                files.Add(BackupManifest.Describe(path, name));
            }
            progress?.Report(new BackupProgress(HotActivity, "writing backup.json", ticket.Shards.Count + 1, ticket.Shards.Count + 1));
            var status = await StatusAsync(cancellationToken).ConfigureAwait(false);
            var manifest = new BackupManifest
            {
                Kind = BackupKind.Hot,
                ClusterId = Id,
                ClusterName = Name,
                NodeCount = status.Nodes.Count,
                ShardCount = ticket.Shards.Count, // the cut's shards (a split after it does not belong to this backup)
                ReplicationFactor = ReplicationFactor,
                Created = ticket.Created,
                Shards = shards,
                Files = files,
                BarrierPauseMicros = ticket.BarrierPauseMicros,
            }.Save(path);
            return manifest.ToBackup(path, watch.Elapsed, valid: null, problem: null);
        }
        catch
        {
            Backups.RemovePartial(path, createdFolder, written);
            throw;
        }
        finally
        {
            if (ticket is not null) await EndHeldQuietlyAsync(AdminOps.BackupEnd, ticket.Shards.Select(s => s.Node), new CutIdArgs(ticket.CutId)).ConfigureAwait(false);
        }
    }

    public virtual async Task<ReplicationBackup> BackupNodeColdAsync(int id, string path, IProgress<BackupProgress>? progress, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        GetNode(id); // NodeNotFound before anything is written
        var watch = Stopwatch.StartNew();
        bool createdFolder = Backups.PrepareFolder(path);
        var written = new List<string>();
        ColdTicket? ticket = null;
        try
        {
            progress?.Report(new BackupProgress(ColdActivity, $"node {id}: handing its leaderships away and copying raft.db and state.db at rest", 0, 4));
            (ticket, _) = await AdminAsync<ColdTicket>(AdminOps.ColdBegin, id, new TimeoutArgs((long)timeout.TotalMilliseconds), timeout, cancellationToken).ConfigureAwait(false);
            var files = new List<BackupManifest.FileEntry>();
            int step = 1;
            foreach (var f in ticket.Files)
            {
                string target = System.IO.Path.Combine(path, f.Name);
                written.Add(target);
                await using (var output = new FileStream(target, FileMode.CreateNew, FileAccess.Write))
                {
                    for (long offset = 0; offset < f.Bytes;)
                    {
                        var (_, chunk) = await AdminAsync<Empty>(AdminOps.FileRead, id, new FileReadArgs(ticket.Ticket, f.Name, offset, FileChunk), _options.RequestTimeout, cancellationToken).ConfigureAwait(false);
                        if (chunk.Length == 0) throw new BackupCorruptException(target, $"Node {id} ended {f.Name} at {offset} of {f.Bytes} bytes.");
                        await output.WriteAsync(chunk, cancellationToken).ConfigureAwait(false);
                        offset += chunk.Length;
                        progress?.Report(new BackupProgress(ColdActivity, $"{f.Name}: {offset:N0} of {f.Bytes:N0} bytes from node {id}", step, 4, (int)(100 * offset / Math.Max(1, f.Bytes))));
                    }
                    output.Flush(flushToDisk: true);
                }
                var entry = BackupManifest.Describe(path, f.Name);
                if (entry.Bytes != f.Bytes || entry.Sha256 != f.Sha256)
                    throw new BackupCorruptException(target, $"{f.Name} arrived with {entry.Bytes} bytes and SHA-256 {entry.Sha256}; node {id} copied {f.Bytes} bytes with SHA-256 {f.Sha256}.");
                files.Add(entry);
                step++;
            }
            var manifest = ColdManifest(id, ticket.Created, ticket.Shards, files).Save(path);
            progress?.Report(new BackupProgress(ColdActivity, "done", 4, 4));
            return manifest.ToBackup(path, watch.Elapsed, valid: null, problem: null);
        }
        catch
        {
            Backups.RemovePartial(path, createdFolder, written);
            throw;
        }
        finally
        {
            if (ticket is not null) await EndHeldQuietlyAsync(AdminOps.ColdEnd, new[] { id }, new TicketArgs(ticket.Ticket)).ConfigureAwait(false);
        }
    }

    /// <summary>The manifest of a cold backup of node <paramref name="id"/> (to be saved into its folder).</summary>
    internal BackupManifest ColdManifest(int id, DateTimeOffset created, IReadOnlyList<ColdShard> shards, List<BackupManifest.FileEntry> files) => new()
    {
        Kind = BackupKind.Cold,
        ClusterId = Id,
        ClusterName = Name,
        NodeCount = GetNodes().Count,
        ShardCount = ShardCount,
        ReplicationFactor = ReplicationFactor,
        NodeId = id,
        Created = created,
        Shards = shards.Select(c => new BackupManifest.ShardEntry(c.Shard, c.Index, c.Term, c.KeyCount, "state.db", id)).ToList(),
        Files = files,
    };

    public virtual async Task<RebuildResult> RestoreNodeAsync(int id, string? backupPath, bool noWait, IProgress<BackupProgress>? progress, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        var node = GetNode(id);
        Guid? upload = null;
        if (backupPath is not null)
        {
            progress?.Report(new BackupProgress(NodeRestoreActivity, "verifying the backup", 0, 4));
            var m = BackupVerifier.Verify(backupPath, cancellationToken);
            if (m.Kind != BackupKind.Cold || m.NodeId != id || m.ClusterId != Id)
                throw new BackupPathException(BackupPathException.Mismatch, backupPath,
                    $"'{backupPath}' is a {m.Kind.ToString().ToLowerInvariant()} backup of node {m.NodeId?.ToString() ?? "-"} of cluster {m.ClusterId}; restoring node {id} of cluster {Id} needs a cold backup of that node.") { Target = backupPath };
            if (node.State != NodeState.Running)
                throw new NodeNotRunningException(id, $"Node {id} is {node.State.ToString().ToLowerInvariant()}; restoring it from a backup sends the backup to it, so it must be running. Start it (with its stores discarded if they are damaged), or restore it from its peers.");
            upload = Guid.NewGuid();
            foreach (var name in new[] { "raft.db", "state.db" })
            {
                string source = System.IO.Path.Combine(backupPath, name);
                long length = new FileInfo(source).Length;
                await using var input = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read);
                var buffer = new byte[FileChunk];
                for (long offset = 0; ;)
                {
                    int n = await input.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
                    bool last = offset + n >= length;
                    await AdminAsync<Empty>(AdminOps.FileWrite, id, new FileWriteArgs(upload.Value, name, offset, last), _options.RequestTimeout, cancellationToken, buffer.AsMemory(0, n)).ConfigureAwait(false);
                    offset += n;
                    progress?.Report(new BackupProgress(NodeRestoreActivity, $"sending {name} to node {id}: {offset:N0} of {length:N0} bytes", 1, 4, (int)(100 * offset / Math.Max(1, length))));
                    if (last) break;
                }
            }
        }
        progress?.Report(new BackupProgress(NodeRestoreActivity, $"taking node {id} out of its groups", 2, 4));
        var (answer, _) = await AdminAsync<RebuildAnswer>(AdminOps.NodeRebuild, 0, new RebuildArgs(id, upload, (long)timeout.TotalMilliseconds), timeout, cancellationToken).ConfigureAwait(false);
        long epoch = long.Parse(answer.State, System.Globalization.CultureInfo.InvariantCulture);
        if (noWait) return new RebuildResult(id, epoch, false, upload is not null, $"Node {id} is marked for rebuild {epoch}; it rejoins its groups by itself.");
        return await WaitForRebuildAsync(id, epoch, upload is not null, progress, timeout, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Waits until node <paramref name="id"/> carried out rebuild <paramref name="epoch"/> and is a voter of every shard placed on it again.</summary>
    protected async Task<RebuildResult> WaitForRebuildAsync(int id, long epoch, bool fromBackup, IProgress<BackupProgress>? progress, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        string state = "";
        while (Stopwatch.GetTimestamp() < deadline)
        {
            var (answer, _) = await AdminAsync<RebuiltAnswer>(AdminOps.NodeRebuilt, 0, new RebuiltArgs(id, epoch), _options.RequestTimeout, ct).ConfigureAwait(false);
            state = answer.State;
            progress?.Report(new BackupProgress(NodeRestoreActivity, state, 3, 4));
            if (answer.Done)
                return new RebuildResult(id, epoch, true, fromBackup, $"Node {id} was rebuilt{(fromBackup ? " from its cold backup" : " from its peers")}: {state}.");
            await Task.Delay(TimeSpan.FromMilliseconds(100), ct).ConfigureAwait(false);
        }
        throw new QuorumUnavailableException(0, timeout, $"node {id} was not rebuilt in time ({state}); it goes on by itself (Get-ReplicationNode shows Rebuilding)") { Target = id };
    }

    public async Task<long> LoadBackupAsync(string backupPath, IProgress<BackupProgress>? progress, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        progress?.Report(new BackupProgress(RestoreActivity, "verifying the backup", 0, 1));
        var m = BackupVerifier.Verify(backupPath, cancellationToken);
        if (m.Shards.Select(s => s.Shard).Distinct().Count() < m.ShardCount)
            throw new BackupPathException(BackupPathException.Incomplete, backupPath,
                $"The {m.Kind.ToString().ToLowerInvariant()} backup in '{backupPath}' holds {m.Shards.Count} of the cluster's {m.ShardCount} shards; a cluster restore needs every shard (a cold backup of a node that hosted them all, or a hot backup).");
        await foreach (var _ in ScanAsync("", ReadConsistency.Linearizable, timeout, cancellationToken).ConfigureAwait(false))
            throw new BackupPathException(BackupPathException.RestoreTargetNotEmpty, backupPath,
                $"Cluster '{Name}' already holds keys; a backup is loaded only into an empty cluster (Restore-ReplicationCluster creates a new one).") { Target = Name };

        long total = m.Shards.Sum(s => s.KeyCount), loaded = 0;
        var batch = new List<KeyWrite>(LoadBatch);
        foreach (var entry in m.Shards.OrderBy(s => s.Shard))
        {
            string file = System.IO.Path.Combine(backupPath, entry.File);
            foreach (var row in ShardFile.ReadRows(file, m.Kind == BackupKind.Cold ? entry.Shard : null))
            {
                batch.Add(new KeyWrite(row.Key, row.Value, ExpectedVersion: 0) { Version = row.Version });
                if (batch.Count == LoadBatch) await FlushAsync().ConfigureAwait(false);
            }
        }
        if (batch.Count > 0) await FlushAsync().ConfigureAwait(false);
        return loaded;

        async Task FlushAsync()
        {
            var results = await WriteAsync(batch, WriteConcern.Majority, timeout, cancellationToken).ConfigureAwait(false);
            foreach (var r in results)
                if (r.Error is { } e) throw e is ReplicationException re ? re : new RemoteOperationException("RestoreFailed", ReplicationErrorKind.Unavailable, e.Message);
            loaded += batch.Count;
            batch.Clear();
            progress?.Report(new BackupProgress(RestoreActivity, $"{loaded:N0} of {total:N0} keys loaded", 1, 1, total == 0 ? null : (int)(100 * loaded / total)));
        }
    }

    private async Task EndHeldQuietlyAsync(string operation, IEnumerable<int> nodes, object args)
    {
        foreach (int node in nodes.Distinct())
        {
            try { await AdminAsync<Empty>(operation, node, args, TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(false); }
            catch (ReplicationException) { /* the node drops it after its idle limit */ }
        }
    }
}
