namespace Replication.Engine.Verification;

/// <summary>Verdict of a linearizability check.</summary>
public enum CheckOutcome
{
    Linearizable,
    NotLinearizable,
    /// <summary>The search budget ran out before a verdict: neither accepted nor rejected. Never a pass.</summary>
    Undecided,
}
