namespace Replication.Engine.Verification;

/// <summary>How an operation ended, as its client saw it.</summary>
public enum OpStatus
{
    /// <summary>Answered: <see cref="HistoryOp.Output"/> holds the result.</summary>
    Ok,
    /// <summary>Definitely had no effect (refused before it was proposed, e.g. DiskFull or an invalid key; a read that failed): dropped before checking.</summary>
    Failed,
    /// <summary>
    /// The outcome is unknown (a timeout, OutcomeUnknown, a connection cut): the operation may take effect at any time
    /// after its invocation and before its <see cref="HistoryOp.Return"/> — infinity (<see cref="long.MaxValue"/>) unless
    /// the recorder knows a bound. Unknown reads are dropped (they have no effect).
    /// </summary>
    Unknown,
}
