namespace Replication.Engine.Verification;

/// <summary>
/// The sequential specification of one key, with the product's semantics (Storage/KvStore.Apply.cs): versions
/// start at 1 and grow by one per put; a delete removes the key (its next put is version 1 again); a
/// compare-and-set applies iff the version matches (0 = the key must be absent). A null output means the
/// client never learned the result (an operation of unknown outcome): any output is accepted. Stateless.
/// </summary>
public static class KvModel
{
    /// <summary>Applies <paramref name="input"/> to <paramref name="state"/>; false if <paramref name="output"/> contradicts it.</summary>
    public static bool Step(KvState state, KvInput input, KvOutput? output, out KvState next)
    {
        ArgumentNullException.ThrowIfNull(input);
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
