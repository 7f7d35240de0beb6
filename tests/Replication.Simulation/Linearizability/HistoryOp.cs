namespace Replication.Simulation.Linearizability;

/// <summary>How an operation ended, as its client saw it.</summary>
public enum OpStatus
{
    /// <summary>Answered: <see cref="HistoryOp.Output"/> holds the result.</summary>
    Ok,
    /// <summary>Definitely had no effect (e.g. refused by a non-leader, or its entry was overwritten): dropped before checking.</summary>
    Failed,
    /// <summary>
    /// No answer by the deadline: may take effect at any time after its invocation and before its
    /// <see cref="HistoryOp.Return"/> (infinity, unless the recorder knows a bound: the simulator
    /// bounds it by the first time any replica applied it).
    /// </summary>
    Unknown,
}

/// <summary>
/// One operation of a history. Times are logical and totally ordered (the simulator uses one
/// counter for all invocations and returns); <see cref="Return"/> is ignored for a failed operation.
/// </summary>
public sealed record HistoryOp(int Id, int Client, KvInput Input, long Invoke, long Return, OpStatus Status, KvOutput? Output)
{
    /// <summary>
    /// Where the recorder says the operation took effect, if it knows (null otherwise): 2 × the log
    /// index of a write's entry, 2 × the applied index a read saw + 1 (right after that entry). The
    /// checker first tries this order as a linearization (it proves one when it is valid); it is
    /// never trusted beyond that.
    /// </summary>
    public long? At { get; init; }

    public static HistoryOp Ok(int id, int client, KvInput input, long invoke, long ret, KvOutput output) =>
        new(id, client, input, invoke, ret, OpStatus.Ok, output);

    public static HistoryOp Unknown(int id, int client, KvInput input, long invoke) =>
        new(id, client, input, invoke, long.MaxValue, OpStatus.Unknown, null);

    public static HistoryOp Failed(int id, int client, KvInput input, long invoke, long ret) =>
        new(id, client, input, invoke, ret, OpStatus.Failed, null);

    public override string ToString() =>
        $"#{Id} c{Client} {Input} [{Invoke}, {(Return == long.MaxValue ? "inf" : Return.ToString())}] {Status}{(Output is null ? "" : " " + Output)}{(At is { } at ? $" at {at / 2}{(at % 2 == 1 ? "+" : "")}" : "")}";
}
