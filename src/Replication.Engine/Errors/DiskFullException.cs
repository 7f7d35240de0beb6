namespace Replication.Engine;

/// <summary>
/// A write was refused because a node that had to persist it has no space left (SQLite's "database or disk is
/// full", or ENOSPC from the file system). Nothing of the write was stored, so it is safe to try again; reads go on
/// working. The node stays up, probes its disk, and takes writes again by itself once a small write succeeds
/// (Cluster/NodeHost.DiskFull.cs).
/// </summary>
public sealed class DiskFullException(string message) : ReplicationException(message)
{
    /// <summary>The stable ErrorId.</summary>
    public const string Id = "DiskFull";

    public override string ErrorId => Id;
    public override ReplicationErrorKind Kind => ReplicationErrorKind.Unavailable;
}
