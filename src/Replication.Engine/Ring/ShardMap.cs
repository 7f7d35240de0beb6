using System.Text;

namespace Replication.Engine.Ring;

/// <summary>
/// Maps keys to a fixed number of shards by a stable hash (FNV-1a 64 over the key's UTF-8
/// bytes, reduced modulo the shard count). Stable across processes, machines and .NET versions,
/// because the mapping is persisted implicitly in where data lives: changing it would strand data.
/// Placement of shards on nodes is a separate concern (see <see cref="Placement"/>). Thread-safe.
/// </summary>
public sealed class ShardMap(int shardCount)
{
    public int ShardCount { get; } = shardCount > 0 ? shardCount : throw new ArgumentOutOfRangeException(nameof(shardCount));

    public int ShardFor(string key)
    {
        Span<byte> stack = stackalloc byte[256];
        int max = Encoding.UTF8.GetMaxByteCount(key.Length);
        byte[]? rented = null;
        Span<byte> buf = max <= stack.Length ? stack : (rented = new byte[max]);
        int n = Encoding.UTF8.GetBytes(key, buf);
        ulong h = 14695981039346656037UL;
        foreach (byte b in buf[..n])
        {
            h ^= b;
            h *= 1099511628211UL;
        }
        return (int)(h % (ulong)ShardCount);
    }
}
