namespace Replication.Engine.Cluster;

/// <summary>Progress of a long backup or restore, reported through <see cref="IProgress{T}"/>: the step
/// (<see cref="Completed"/> of <see cref="Total"/>), and within it a percentage when one is known. Immutable.</summary>
public sealed record BackupProgress(string Activity, string Status, int Completed, int Total, int? Percent = null)
{
    public int PercentComplete => Percent is int p ? Math.Clamp(p, 0, 100) : Total <= 0 ? 0 : Math.Clamp(Completed * 100 / Total, 0, 100);
}
