namespace Replication.Engine.Raft;

/// <summary>
/// The in-flight window of Append messages to one follower (etcd tracker/inflights.go): the last
/// index carried by each message sent and not yet acknowledged. Bounds pipelining so a slow
/// follower cannot make the leader queue unbounded data. The window is full when it holds
/// <c>capacity</c> messages or <c>maxBytes</c> entry bytes (whichever comes first); one message
/// is always allowed into an empty window, however large, so progress is never blocked.
/// Invariant: Bytes == sum of the sizes of the messages held. Not thread-safe.
/// </summary>
internal sealed class Inflights(int capacity, long maxBytes)
{
    private readonly Queue<(long LastIndex, long Bytes)> _sent = new();

    public int Count => _sent.Count;
    /// <summary>Entry bytes in flight.</summary>
    public long Bytes { get; private set; }
    public bool Full => _sent.Count >= capacity || Bytes >= maxBytes;

    /// <summary>Records a sent message whose last entry is <paramref name="lastIndex"/> (ascending) carrying <paramref name="bytes"/>.</summary>
    public void Add(long lastIndex, long bytes)
    {
        _sent.Enqueue((lastIndex, bytes));
        Bytes += bytes;
    }

    /// <summary>Records a sent message counted by number only (no bytes).</summary>
    public void Add(long lastIndex) => Add(lastIndex, 0);

    /// <summary>Releases every message whose last index is &lt;= <paramref name="index"/> (acknowledged).</summary>
    public void FreeLE(long index)
    {
        while (_sent.Count > 0 && _sent.Peek().LastIndex <= index) Bytes -= _sent.Dequeue().Bytes;
    }

    /// <summary>Releases the oldest message (used when its acknowledgment may have been lost).</summary>
    public void FreeFirstOne()
    {
        if (_sent.Count > 0) Bytes -= _sent.Dequeue().Bytes;
    }

    public void Reset()
    {
        _sent.Clear();
        Bytes = 0;
    }
}
