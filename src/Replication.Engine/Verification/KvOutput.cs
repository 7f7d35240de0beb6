namespace Replication.Engine.Verification;

/// <summary>
/// What the client was told, following the product's results (KvOpResult, StoredKey):
/// Put: <see cref="Version"/> = the new version. Get: <see cref="Value"/> and <see cref="Version"/>
/// (null and 0 when absent). Delete: <see cref="Applied"/> = the key existed. Cas: <see cref="Applied"/>
/// = the condition held; <see cref="Version"/> = the new version when applied, else the actual version
/// (VersionConflictException.ActualVersion).
/// </summary>
public sealed record KvOutput(bool Applied, string? Value, long Version)
{
    public override string ToString() => $"{(Applied ? "ok" : "no")} {Value ?? "-"} v{Version}";
}
