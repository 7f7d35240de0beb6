namespace Replication.Simulation.Linearizability;

/// <summary>Kind of a key-value operation in a history.</summary>
public enum KvOpKind
{
    Put,
    Get,
    Delete,
    /// <summary>Compare-and-set on the version: put <see cref="KvInput.Value"/> iff the key's version is <see cref="KvInput.ExpectedVersion"/> (0 = absent).</summary>
    Cas,
}

/// <summary>What a client asked for.</summary>
public sealed record KvInput(KvOpKind Kind, string Key, string? Value = null, long ExpectedVersion = 0)
{
    public override string ToString() => Kind switch
    {
        KvOpKind.Put => $"put({Key}={Value})",
        KvOpKind.Get => $"get({Key})",
        KvOpKind.Delete => $"delete({Key})",
        _ => $"cas({Key}: v{ExpectedVersion} -> {Value})",
    };
}

/// <summary>
/// What the client was told, following the product's results (KvOpResult, StoredKey):
/// Put: <see cref="Version"/> = the new version. Get: <see cref="Value"/> and <see cref="Version"/>
/// (null and 0 when absent). Delete: <see cref="Applied"/> = the key existed. Cas: <see cref="Applied"/>
/// = the condition held; <see cref="Version"/> = the new version when applied, else the actual version.
/// </summary>
public sealed record KvOutput(bool Applied, string? Value, long Version)
{
    public override string ToString() => $"{(Applied ? "ok" : "no")} {Value ?? "-"} v{Version}";
}

/// <summary>The state of one key: its value (null = absent) and version (0 = absent).</summary>
public readonly record struct KvState(string? Value, long Version)
{
    public static readonly KvState Absent = new(null, 0);
    public override string ToString() => Value is null ? "absent" : $"{Value}@v{Version}";
}

/// <summary>
/// The sequential specification of one key, with the product's semantics (KvStore.Apply):
/// versions start at 1 and grow by one per put; a delete removes the key (its next put is
/// version 1 again). A null output means "unknown" (the client timed out): any output is accepted.
/// </summary>
public static class KvModel
{
    /// <summary>Applies <paramref name="input"/> to <paramref name="state"/>; false if <paramref name="output"/> contradicts it.</summary>
    public static bool Step(KvState state, KvInput input, KvOutput? output, out KvState next)
    {
        switch (input.Kind)
        {
            case KvOpKind.Put:
                next = new KvState(input.Value, state.Version + 1);
                return output is null || (output.Applied && output.Version == next.Version);
            case KvOpKind.Get:
                next = state;
                return output is null || (output.Value == state.Value && output.Version == state.Version);
            case KvOpKind.Delete:
                next = KvState.Absent;
                return output is null || output.Applied == (state.Version != 0);
            default:
                if (state.Version == input.ExpectedVersion)
                {
                    next = new KvState(input.Value, state.Version + 1);
                    return output is null || (output.Applied && output.Version == next.Version);
                }
                next = state;
                return output is null || (!output.Applied && output.Version == state.Version);
        }
    }
}
