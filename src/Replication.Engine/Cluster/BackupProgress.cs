namespace Replication.Engine.Cluster;

/// <summary>Progress of a long backup or restore, reported through <see cref="IProgress{T}"/>. Immutable.</summary>
public sealed record BackupProgress(string Activity, string Status, int Completed, int Total)
{
    public int PercentComplete => Total <= 0 ? 0 : Math.Clamp(Completed * 100 / Total, 0, 100);
}
