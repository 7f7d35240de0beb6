namespace Replication.Engine.Verification;

/// <summary>The state of one key in the sequential model: its value (null = absent) and version (0 = absent).</summary>
public readonly record struct KvState(string? Value, long Version)
{
    public static readonly KvState Absent = new(null, 0);
    public override string ToString() => Value is null ? "absent" : $"{Value}@v{Version}";
}
