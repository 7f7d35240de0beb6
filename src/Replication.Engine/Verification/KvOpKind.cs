namespace Replication.Engine.Verification;

/// <summary>Kind of a key-value operation in a history (<see cref="HistoryOp"/>).</summary>
public enum KvOpKind
{
    Put,
    Get,
    Delete,
    /// <summary>Compare-and-set on the version: put <see cref="KvInput.Value"/> iff the key's version is <see cref="KvInput.ExpectedVersion"/> (0 = absent).</summary>
    Cas,
}
