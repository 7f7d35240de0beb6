namespace Replication.Engine.Verification;

/// <summary>
/// One operation of a history: which client ran it, what it asked (<see cref="Input"/>), when it was invoked and when
/// it returned (any totally ordered clock: logical for the simulator, <see cref="System.Diagnostics.Stopwatch"/> ticks
/// for the fault drill), how it ended and what it was told. <see cref="Return"/> is ignored for a failed operation and
/// is <see cref="long.MaxValue"/> for an unknown one unless the recorder can bound it.
/// </summary>
public sealed record HistoryOp(int Id, int Client, KvInput Input, long Invoke, long Return, OpStatus Status, KvOutput? Output)
{
    /// <summary>
    /// Where the recorder says the operation took effect, if it knows (null otherwise; the simulator records it): 2 × the
    /// log index of a write's entry, 2 × the applied index a read saw + 1 (right after that entry). The checker first
    /// tries this order as a linearization (it proves one when it is valid); it is never trusted beyond that.
    /// </summary>
    public long? At { get; init; }

    public static HistoryOp Ok(int id, int client, KvInput input, long invoke, long ret, KvOutput output) =>
        new(id, client, input, invoke, ret, OpStatus.Ok, output);

    public static HistoryOp Unknown(int id, int client, KvInput input, long invoke) =>
        new(id, client, input, invoke, long.MaxValue, OpStatus.Unknown, null);

    public static HistoryOp Failed(int id, int client, KvInput input, long invoke, long ret) =>
        new(id, client, input, invoke, ret, OpStatus.Failed, null);

    public override string ToString() =>
        $"#{Id} c{Client} {Input} [{Invoke}, {(Return == long.MaxValue ? "inf" : Return.ToString(System.Globalization.CultureInfo.InvariantCulture))}] {Status}{(Output is null ? "" : " " + Output)}{(At is { } at ? $" at {at / 2}{(at % 2 == 1 ? "+" : "")}" : "")}";
}
