using System.Text.Json;
using System.Text.Json.Serialization;

namespace Replication.Engine.Cluster;

/// <summary>
/// The cluster's identity and layout, stored as cluster.json in the cluster folder so a cluster
/// can be reopened from its files. Written atomically (temp file + rename). Schema versioned:
/// an unknown version is refused rather than guessed at.
/// </summary>
internal sealed record ClusterManifest
{
    public const int CurrentSchemaVersion = 1;
    public const string FileName = "cluster.json";

    public int SchemaVersion { get; init; } = CurrentSchemaVersion;
    public required Guid Id { get; init; }
    public required string Name { get; init; }
    public required int NodeCount { get; init; }
    public required int ShardCount { get; init; }
    public required int ReplicationFactor { get; init; }
    /// <summary>Replicas of each shard (index = shard id).</summary>
    public required int[][] Placement { get; init; }
    /// <summary>Last port each node listened on (node id as string key), reused on restart when free.</summary>
    public Dictionary<string, int> Ports { get; init; } = new();
    public DateTimeOffset Created { get; init; } = DateTimeOffset.UtcNow;

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.Never };

    public static ClusterManifest? TryLoad(string folder)
    {
        string file = Path.Combine(folder, FileName);
        if (!File.Exists(file)) return null;
        ClusterManifest? m;
        try
        {
            m = JsonSerializer.Deserialize<ClusterManifest>(File.ReadAllText(file), Json);
        }
        catch (JsonException ex)
        {
            throw new StorageCorruptException($"{file} is not a valid cluster manifest: {ex.Message}");
        }
        if (m is null || m.SchemaVersion != CurrentSchemaVersion)
            throw new StorageCorruptException($"{file} has schema version {m?.SchemaVersion}; this version of Replication reads {CurrentSchemaVersion}.");
        return m;
    }

    public void Save(string folder)
    {
        Directory.CreateDirectory(folder);
        string file = Path.Combine(folder, FileName);
        string temp = file + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(this, Json));
        File.Move(temp, file, overwrite: true);
    }
}
