using System.Text.Json;
using System.Text.Json.Serialization;

namespace Replication.Engine.Cluster;

/// <summary>
/// What makes a folder an embedded cluster's (cluster.json): the cluster's id and name and the node folders it
/// runs, with the port each node last listened on (reused on restart when free). Everything else — shape,
/// registry, placement — lives in the cluster's replicated metadata, as for separate processes; this file only
/// says which node folders this process starts. Written atomically (temp file, fsync, rename). Schema
/// versioned: an unknown version is refused rather than guessed at.
/// </summary>
internal sealed record ClusterManifest
{
    public const int CurrentSchemaVersion = 2;
    public const string FileName = "cluster.json";

    public int SchemaVersion { get; init; } = CurrentSchemaVersion;
    public required Guid Id { get; init; }
    public required string Name { get; init; }
    /// <summary>The node folders (relative to the cluster folder), in the order they were created; the first founded the cluster.</summary>
    public List<NodeSlot> Nodes { get; init; } = new();
    public DateTimeOffset Created { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>One node of the cluster: its folder, its id once it founded or joined (0 before), the port it last listened on.</summary>
    internal sealed record NodeSlot(string Folder, int Id, int Port);

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.Never };

    /// <exception cref="StorageCorruptException">The file exists but is not a manifest this version reads.</exception>
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
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            JsonSerializer.Serialize(stream, this, Json);
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, file, overwrite: true);
    }
}
