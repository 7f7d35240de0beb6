namespace Replication.Engine.Raft;

/// <summary>
/// The in-flight window of Append messages to one follower (etcd tracker/inflights.go): the last
/// index carried by each message sent and not yet acknowledged. Bounds pipelining so a slow
/// follower cannot make the leader queue unbounded data. Not thread-safe.
/// </summary>
internal sealed class Inflights(int capacity)
{
    private readonly Queue<long> _lastIndexes = new();

    public int Count => _lastIndexes.Count;
    public bool Full => _lastIndexes.Count >= capacity;

    /// <summary>Records a sent message whose last entry is <paramref name="lastIndex"/> (ascending).</summary>
    public void Add(long lastIndex) => _lastIndexes.Enqueue(lastIndex);

    /// <summary>Releases every message whose last index is &lt;= <paramref name="index"/> (acknowledged).</summary>
    public void FreeLE(long index)
    {
        while (_lastIndexes.Count > 0 && _lastIndexes.Peek() <= index) _lastIndexes.Dequeue();
    }

    /// <summary>Releases the oldest message (used when its acknowledgment may have been lost).</summary>
    public void FreeFirstOne()
    {
        if (_lastIndexes.Count > 0) _lastIndexes.Dequeue();
    }

    public void Reset() => _lastIndexes.Clear();
}
