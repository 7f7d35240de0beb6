namespace Replication.Engine.Verification;

/// <summary>
/// The verdict of <see cref="LinearizabilityChecker"/>: <see cref="Outcome"/> is NotLinearizable when any key is, else
/// Undecided when any key could not be decided within the budget, else Linearizable. <see cref="Key"/> and
/// <see cref="Detail"/> explain the first key that decided it (a readable history of that key when not linearizable);
/// <see cref="Steps"/> is the search work done. <see cref="ViolatedKeys"/> and <see cref="UndecidedKeys"/> list every
/// such key when the whole history was checked (<see cref="LinearizabilityChecker.CheckAll"/>).
/// </summary>
public sealed record CheckResult(CheckOutcome Outcome, string? Key, string Detail, long Steps)
{
    public IReadOnlyList<string> ViolatedKeys { get; init; } = Array.Empty<string>();
    public IReadOnlyList<string> UndecidedKeys { get; init; } = Array.Empty<string>();
    /// <summary>Keys whose sub-history was checked (decided or not).</summary>
    public int KeysChecked { get; init; }
}
