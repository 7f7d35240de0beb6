using Replication.Engine.Cluster;

namespace Replication.Engine.Storage;

/// <summary>
/// Checks a backup folder end to end before anyone trusts it: the manifest's format and checksum,
/// then every file's presence, size and SHA-256, then that each file opens as what it claims to be
/// and holds the stated shards with the stated key counts, indexes and terms. The first failure
/// throws <see cref="BackupCorruptException"/> naming the file. Read-only; thread-safe.
/// </summary>
internal static class BackupVerifier
{
    public static BackupManifest Verify(string folder, CancellationToken cancellationToken, IProgress<BackupProgress>? progress = null)
    {
        var m = BackupManifest.Load(folder);
        string manifestFile = Path.Combine(folder, BackupManifest.FileName);
        var files = new Dictionary<string, BackupManifest.FileEntry>(StringComparer.Ordinal);
        int steps = m.Files.Count + m.Shards.Count, step = 0;
        foreach (var f in m.Files)
        {
            cancellationToken.ThrowIfCancellationRequested();
            progress?.Report(new BackupProgress($"Verifying backup {folder}", $"SHA-256 of {f.Name}", step++, steps));
            string path = Path.Combine(folder, f.Name);
            if (!File.Exists(path)) throw new BackupCorruptException(path, $"'{path}' is missing from the backup.");
            long length = new FileInfo(path).Length;
            if (length != f.Bytes)
                throw new BackupCorruptException(path, $"'{path}' has {length} bytes; the manifest says {f.Bytes} (truncated or altered).");
            string hash = BackupManifest.HashFile(path);
            if (!string.Equals(hash, f.Sha256, StringComparison.OrdinalIgnoreCase))
                throw new BackupCorruptException(path, $"'{path}' fails its SHA-256 check (manifest {f.Sha256}, file {hash}).");
            files[f.Name] = f;
        }

        if (m.Shards.Select(s => s.Shard).Distinct().Count() != m.Shards.Count)
            throw new BackupCorruptException(manifestFile, $"'{manifestFile}' lists a shard twice.");
        foreach (var s in m.Shards)
            if (!files.ContainsKey(s.File))
                throw new BackupCorruptException(manifestFile, $"'{manifestFile}': shard {s.Shard} names file '{s.File}', which the manifest does not list.");

        if (m.Kind == BackupKind.Hot)
        {
            if (m.Shards.Count != m.ShardCount)
                throw new BackupCorruptException(manifestFile, $"'{manifestFile}': a hot backup must hold all {m.ShardCount} shards; it lists {m.Shards.Count}.");
            foreach (var s in m.Shards)
            {
                cancellationToken.ThrowIfCancellationRequested();
                progress?.Report(new BackupProgress($"Verifying backup {folder}", $"shard {s.Shard}: keys, index and term", step++, steps));
                string path = Path.Combine(folder, s.File);
                var c = ShardFile.Inspect(path);
                Expect(path, s, c);
            }
        }
        else
        {
            foreach (var group in m.Shards.GroupBy(s => s.File))
            {
                progress?.Report(new BackupProgress($"Verifying backup {folder}", $"shards {string.Join(", ", group.Select(s => s.Shard))} in {group.Key}", step, steps));
                step += group.Count();
                string path = Path.Combine(folder, group.Key);
                var contents = ShardFile.InspectStateDb(path, group.Select(s => s.Shard)).ToDictionary(c => c.Shard);
                foreach (var s in group) Expect(path, s, contents[s.Shard]);
            }
        }
        return m;
    }

    private static void Expect(string path, BackupManifest.ShardEntry s, ShardFile.Content c)
    {
        if (c.Shard != s.Shard || c.KeyCount != s.KeyCount || c.Index != s.Index || c.Term != s.Term)
            throw new BackupCorruptException(path,
                $"'{path}' holds shard {c.Shard} with {c.KeyCount} keys at index {c.Index} (term {c.Term}); the manifest says shard {s.Shard} with {s.KeyCount} keys at index {s.Index} (term {s.Term}).");
    }
}
