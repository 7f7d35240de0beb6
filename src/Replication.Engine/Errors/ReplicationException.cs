namespace Replication.Engine;

/// <summary>
/// Base of every error the engine reports to its callers. <see cref="ErrorId"/> is stable
/// (PowerShell turns it into the ErrorRecord's ErrorId; tests assert it), and
/// <see cref="Kind"/> says what sort of failure it is, so callers can pick a category
/// without knowing every subclass.
/// </summary>
public abstract class ReplicationException : Exception
{
    protected ReplicationException(string message, Exception? inner = null) : base(message, inner) { }

    public abstract string ErrorId { get; }
    public abstract ReplicationErrorKind Kind { get; }
    /// <summary>The input the error is about (a key, a node id), if any.</summary>
    public object? Target { get => _target; init => _target = value; }

    private object? _target;

    /// <summary>Sets the target of an exception rebuilt from the wire (Client/ErrorCodec.cs).</summary>
    internal void SetTarget(object? target) => _target = target;
}
