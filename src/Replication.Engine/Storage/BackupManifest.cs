using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Replication.Engine.Cluster;

namespace Replication.Engine.Storage;

/// <summary>
/// backup.json, the manifest of a backup folder (format v1). Written last and atomically (temp
/// file, fsync, rename), so a folder without it is an unfinished backup. Fields:
/// <code>
/// FormatVersion, Kind (Hot|Cold), ClusterId, ClusterName, NodeCount, ShardCount, ReplicationFactor,
/// NodeId (cold only), Created (ISO 8601),
/// Shards: [{ Shard, Index, Term, KeyCount, File, Node }],
/// Files:  [{ Name, Bytes, Sha256 }],          -- every data file of the folder
/// Checksum                                    -- SHA-256 (hex) of CanonicalText()
/// </code>
/// The checksum is over a canonical text of every other field (not over the JSON bytes), so it
/// does not depend on how a serializer spaces or orders JSON; any edit of a field, including a
/// file's SHA-256, invalidates it. Immutable record; not thread-affine.
/// </summary>
internal sealed record BackupManifest
{
    public const int CurrentFormatVersion = 1;
    public const string FileName = "backup.json";

    public int FormatVersion { get; init; } = CurrentFormatVersion;
    public required BackupKind Kind { get; init; }
    public required Guid ClusterId { get; init; }
    public required string ClusterName { get; init; }
    public required int NodeCount { get; init; }
    public required int ShardCount { get; init; }
    public required int ReplicationFactor { get; init; }
    public int? NodeId { get; init; }
    public required DateTimeOffset Created { get; init; }
    public required List<ShardEntry> Shards { get; init; }
    public required List<FileEntry> Files { get; init; }
    public string Checksum { get; init; } = "";
    /// <summary>A hot backup's write pause: the longest any shard held writes for the cut (microseconds; 0 for a cold backup).</summary>
    public long BarrierPauseMicros { get; init; }

    internal sealed record ShardEntry(int Shard, long Index, long Term, long KeyCount, string File, int Node);
    internal sealed record FileEntry(string Name, long Bytes, string Sha256);

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() },
    };

    /// <summary>The text the checksum covers: one line per field, invariant culture, fixed order.</summary>
    public string CanonicalText()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"replication-backup|{FormatVersion}|{Kind}|{ClusterId:D}|{ClusterName}|{NodeCount}|{ShardCount}|{ReplicationFactor}|{NodeId}|{Created.UtcTicks}\n");
        foreach (var s in Shards) sb.Append(CultureInfo.InvariantCulture, $"shard|{s.Shard}|{s.Index}|{s.Term}|{s.KeyCount}|{s.File}|{s.Node}\n");
        foreach (var f in Files) sb.Append(CultureInfo.InvariantCulture, $"file|{f.Name}|{f.Bytes}|{f.Sha256}\n");
        if (BarrierPauseMicros != 0) sb.Append(CultureInfo.InvariantCulture, $"barrier|{BarrierPauseMicros}\n");
        return sb.ToString();
    }

    public string ComputeChecksum() => Hex(SHA256.HashData(Encoding.UTF8.GetBytes(CanonicalText())));

    /// <summary>Writes the manifest with its checksum into <paramref name="folder"/>: temp file, fsync, rename.</summary>
    public BackupManifest Save(string folder)
    {
        var sealedManifest = this with { Checksum = ComputeChecksum() };
        string file = Path.Combine(folder, FileName);
        string temp = file + ".tmp";
        using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
        {
            JsonSerializer.Serialize(fs, sealedManifest, Json);
            fs.Flush(flushToDisk: true);
        }
        File.Move(temp, file);
        return sealedManifest;
    }

    /// <summary>Reads and checks the manifest of <paramref name="folder"/> (format and checksum; not the files).</summary>
    /// <exception cref="BackupPathException">The folder holds no backup.json (BackupNotFound).</exception>
    /// <exception cref="BackupCorruptException">The manifest is unreadable, of an unknown format, or fails its checksum.</exception>
    public static BackupManifest Load(string folder)
    {
        string file = Path.Combine(folder, FileName);
        if (!File.Exists(file))
            throw new BackupPathException(BackupPathException.NotFound, folder, $"'{folder}' holds no backup (no {FileName}).");
        BackupManifest? m;
        try
        {
            m = JsonSerializer.Deserialize<BackupManifest>(File.ReadAllText(file), Json);
        }
        catch (JsonException ex)
        {
            throw new BackupCorruptException(file, $"'{file}' is not a valid backup manifest: {ex.Message}");
        }
        if (m is null) throw new BackupCorruptException(file, $"'{file}' is empty.");
        if (m.FormatVersion != CurrentFormatVersion)
            throw new BackupCorruptException(file, $"'{file}' has format version {m.FormatVersion}; this version of Replication reads {CurrentFormatVersion}.");
        string expected = m.ComputeChecksum();
        if (!string.Equals(expected, m.Checksum, StringComparison.OrdinalIgnoreCase))
            throw new BackupCorruptException(file, $"'{file}' fails its checksum (stored {m.Checksum}, computed {expected}): the manifest was altered or damaged.");
        foreach (var f in m.Files)
            if (f.Name.Length == 0 || f.Name != Path.GetFileName(f.Name))
                throw new BackupCorruptException(file, $"'{file}' names a file outside the backup folder: '{f.Name}'.");
        return m;
    }

    /// <summary>Parses backup.json of <paramref name="folder"/> without any check; null if absent.</summary>
    public static BackupManifest? Parse(string folder)
    {
        string file = Path.Combine(folder, FileName);
        return File.Exists(file) ? JsonSerializer.Deserialize<BackupManifest>(File.ReadAllText(file), Json) : null;
    }

    /// <summary>SHA-256 (lower-case hex) of a file, streamed.</summary>
    public static string HashFile(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        return Hex(SHA256.HashData(fs));
    }

    public static FileEntry Describe(string folder, string name)
    {
        string path = Path.Combine(folder, name);
        return new FileEntry(name, new FileInfo(path).Length, HashFile(path));
    }

    /// <summary>The engine's view of this manifest.</summary>
    public ReplicationBackup ToBackup(string folder, TimeSpan duration, bool? valid, string? problem)
    {
        var files = Files.ToDictionary(f => f.Name);
        return new ReplicationBackup
        {
            Path = folder,
            ClusterId = ClusterId,
            ClusterName = ClusterName,
            Kind = Kind,
            NodeId = NodeId,
            ShardCount = ShardCount,
            NodeCount = NodeCount,
            ReplicationFactor = ReplicationFactor,
            Shards = Shards.Select(s => new BackupShard
            {
                Shard = s.Shard,
                Index = s.Index,
                Term = s.Term,
                KeyCount = s.KeyCount,
                File = s.File,
                Bytes = files.TryGetValue(s.File, out var f) ? f.Bytes : 0,
                Sha256 = f?.Sha256 ?? "",
                Node = s.Node,
            }).ToArray(),
            Bytes = Files.Sum(f => f.Bytes),
            Checksum = Checksum,
            Created = Created,
            Duration = duration,
            Valid = valid,
            Problem = problem,
            BarrierPause = TimeSpan.FromMicroseconds(BarrierPauseMicros),
        };
    }

    private static string Hex(byte[] hash) => Convert.ToHexString(hash).ToLowerInvariant();
}
