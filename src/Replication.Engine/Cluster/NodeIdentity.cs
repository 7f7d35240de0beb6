using System.Text.Json;

namespace Replication.Engine.Cluster;

/// <summary>
/// Who a process node is, stored as node.json in its data folder so a restart with the same -Path
/// resumes the same node: its id, its cluster's id, and the token it joined with. No secret is ever
/// stored. Written atomically (temp file + rename) before the node uses the id. Schema versioned: an
/// unknown version is refused rather than guessed at. A node that asked to join but crashed before
/// the answer has <see cref="NodeId"/> 0 and keeps its <see cref="JoinToken"/>, so joining again is
/// answered with the id the first attempt may already have been given.
/// </summary>
public sealed record NodeIdentity
{
    public const int CurrentSchemaVersion = 1;
    public const string FileName = "node.json";

    public int SchemaVersion { get; init; } = CurrentSchemaVersion;
    /// <summary>0 while a join is pending.</summary>
    public int NodeId { get; init; }
    public Guid ClusterId { get; init; }
    public Guid JoinToken { get; init; }
    /// <summary>The cluster's identity and shape as known when this node founded or joined it (the founding node writes it into the metadata once it leads the metadata group).</summary>
    public ClusterInfo? Cluster { get; init; }
    public DateTimeOffset Created { get; init; } = DateTimeOffset.UtcNow;
    /// <summary>The other nodes' endpoints as last known (saved when the registry changes), so a node whose stores were
    /// discarded (or whose metadata replica lags far behind) can still find its peers.</summary>
    public Dictionary<int, string> Peers { get; init; } = new();
    /// <summary>The last rebuild (<see cref="NodeEntry.RebuildEpoch"/>) this node carried out: its data was dropped or replaced for it.</summary>
    public long RebuiltEpoch { get; init; }

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <exception cref="StorageCorruptException">The file exists but is not a node identity this version reads.</exception>
    public static NodeIdentity? TryLoad(string folder)
    {
        string file = Path.Combine(folder, FileName);
        if (!File.Exists(file)) return null;
        NodeIdentity? identity;
        try { identity = JsonSerializer.Deserialize<NodeIdentity>(File.ReadAllText(file), Json); }
        catch (JsonException e) { throw new StorageCorruptException($"{file} is not a valid node identity: {e.Message}"); }
        if (identity is null || identity.SchemaVersion != CurrentSchemaVersion)
            throw new StorageCorruptException($"{file} has schema version {identity?.SchemaVersion}; this version of Replication reads {CurrentSchemaVersion}.");
        return identity;
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
