namespace Replication.Engine;

/// <summary>
/// A data folder (a node's, or an embedded cluster's) is already open: another node or cluster, in this
/// process or another one, holds its exclusive lock. Nothing was changed on disk.
/// </summary>
public sealed class DataPathInUseException : ReplicationException
{
    public DataPathInUseException(string path, int? holderProcessId)
        : this($"'{path}' is in use by {(holderProcessId is int pid ? $"process {pid}" : "another process or cluster")}: a data folder has one owner at a time. " +
            "Stop that node or cluster first, or give another folder.", path, holderProcessId) { }

    internal DataPathInUseException(string message, string path, int? holderProcessId) : base(message)
    {
        Path = path;
        HolderProcessId = holderProcessId;
    }

    public override string ErrorId => "DataPathInUse";
    public override ReplicationErrorKind Kind => ReplicationErrorKind.InvalidState;
    /// <summary>The folder.</summary>
    public string Path { get; }
    /// <summary>The process holding the lock, where the operating system tells it (Linux: /proc/locks); null otherwise.</summary>
    public int? HolderProcessId { get; }
}
