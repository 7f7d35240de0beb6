using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Replication.Engine.Storage;

/// <summary>
/// A binary hash tree over one shard's ordered key space, built on demand from the ordered
/// (WITHOUT ROWID) index in one streaming pass over a <see cref="ShardSnapshot"/>.
///
/// Why on demand rather than maintained incrementally: a check is a rare operator action, while
/// an incremental tree would add hashing and a second persisted structure (itself needing crash
/// consistency with the rows) to every apply on the write path. A pass costs O(keys) reads of a
/// B-tree walked in order, with O(leaves) memory.
///
/// Leaves are KEY RANGES, cut from the reference replica (the leader): L = a power of two, about
/// <see cref="TargetLeafKeys"/> keys per leaf, at most <see cref="MaxLeaves"/>; leaf j covers
/// [Boundaries[j-1], Boundaries[j]) with open ends. Every other replica hashes its rows into the SAME
/// ranges, so a differing leaf names a key range, and replicas whose rows are identical have
/// identical roots. Hashes (SHA-256, with domain separation):
/// <code>
///   leaf  = H(0x00 || row*)   row = u32 len || key UTF-8 || u32 len || value UTF-8 || i64 version || i64 modified_index  (little-endian)
///   inner = H(0x01 || left || right)
/// </code>
/// Immutable once built; thread-safe to read.
/// </summary>
internal sealed class MerkleTree
{
    public const int TargetLeafKeys = 32;
    public const int MaxLeaves = 4096;

    private MerkleTree(IReadOnlyList<string> boundaries, byte[][] leaves, long keyCount)
    {
        Boundaries = boundaries;
        Leaves = leaves;
        KeyCount = keyCount;
        Root = RootOf(leaves);
    }

    /// <summary>Lower bounds of leaves 1..L-1 (leaf 0 starts at the smallest key).</summary>
    public IReadOnlyList<string> Boundaries { get; }
    public byte[][] Leaves { get; }
    public long KeyCount { get; }
    public byte[] Root { get; }
    public string RootHex => Convert.ToHexString(Root).ToLowerInvariant();

    /// <summary>Leaves for a shard of <paramref name="keys"/> keys: a power of two, every leaf non-empty.</summary>
    public static int LeafCountFor(long keys)
    {
        long wanted = Math.Max(1, (keys + TargetLeafKeys - 1) / TargetLeafKeys);
        int leaves = 1;
        while (leaves < wanted && leaves < MaxLeaves) leaves *= 2;
        while (leaves > 1 && leaves > keys) leaves /= 2; // never an empty leaf on the reference replica
        return leaves;
    }

    /// <summary>Builds the reference tree: chooses the leaf boundaries from this snapshot's keys.</summary>
    public static MerkleTree BuildReference(ShardSnapshot snapshot)
    {
        long n = snapshot.Count();
        int leafCount = LeafCountFor(n);
        var boundaries = new List<string>(leafCount - 1);
        var leaves = new byte[leafCount][];
        using var hash = NewLeaf();
        long i = 0, count = 0;
        int leaf = 0;
        foreach (var row in snapshot.Rows())
        {
            int target = n == 0 ? 0 : (int)(i * leafCount / n);
            while (leaf < target)
            {
                leaves[leaf++] = hash.GetHashAndReset();
                hash.AppendData(LeafTag);
                boundaries.Add(row.Key);
            }
            AppendRow(hash, row);
            i++;
            count++;
        }
        while (leaf < leafCount) // the last leaf (and any empty ones if rows vanished under a wrong count)
        {
            leaves[leaf++] = hash.GetHashAndReset();
            hash.AppendData(LeafTag);
            if (leaf < leafCount) boundaries.Add(boundaries.Count > 0 ? boundaries[^1] : "");
        }
        return new MerkleTree(boundaries, leaves, count);
    }

    /// <summary>Builds a replica's tree over the reference's leaf boundaries.</summary>
    public static MerkleTree Build(ShardSnapshot snapshot, IReadOnlyList<string> boundaries)
    {
        var leaves = new byte[boundaries.Count + 1][];
        using var hash = NewLeaf();
        int leaf = 0;
        long count = 0;
        foreach (var row in snapshot.Rows())
        {
            while (leaf < boundaries.Count && KvStore.CompareKeys(row.Key, boundaries[leaf]) >= 0)
            {
                leaves[leaf++] = hash.GetHashAndReset();
                hash.AppendData(LeafTag);
            }
            AppendRow(hash, row);
            count++;
        }
        while (leaf < leaves.Length)
        {
            leaves[leaf++] = hash.GetHashAndReset();
            hash.AppendData(LeafTag);
        }
        return new MerkleTree(boundaries, leaves, count);
    }

    /// <summary>Key range of leaf <paramref name="leaf"/>: [start, end), null = open.</summary>
    public (string? Start, string? End) RangeOf(int leaf) =>
        (leaf == 0 ? null : Boundaries[leaf - 1], leaf >= Boundaries.Count ? null : Boundaries[leaf]);

    /// <summary>Leaves whose hash differs from <paramref name="other"/>'s, found by descending only into differing subtrees.</summary>
    public IReadOnlyList<int> DifferingLeaves(MerkleTree other) => DifferingLeaves(Leaves, other.Leaves);

    /// <summary>Leaves that differ between two trees given by their leaf hashes (the same leaf ranges on both sides).</summary>
    public static IReadOnlyList<int> DifferingLeaves(byte[][] leaves, byte[][] otherLeaves)
    {
        if (otherLeaves.Length != leaves.Length) throw new ArgumentException("Trees over different leaves cannot be compared.", nameof(otherLeaves));
        var result = new List<int>();
        var mine = Levels(leaves);
        var theirs = Levels(otherLeaves);
        if (mine[^1][0].AsSpan().SequenceEqual(theirs[^1][0])) return result;
        var stack = new Stack<(int Level, int Index)>();
        stack.Push((mine.Count - 1, 0));
        while (stack.Count > 0)
        {
            var (level, index) = stack.Pop();
            if (mine[level][index].AsSpan().SequenceEqual(theirs[level][index])) continue;
            if (level == 0)
            {
                result.Add(index);
                continue;
            }
            stack.Push((level - 1, 2 * index + 1));
            stack.Push((level - 1, 2 * index));
        }
        result.Sort();
        return result;
    }

    private static readonly byte[] LeafTag = [0x00];

    private static IncrementalHash NewLeaf()
    {
        var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        h.AppendData(LeafTag);
        return h;
    }

    internal static void AppendRow(IncrementalHash hash, StoredKey row)
    {
        Span<byte> number = stackalloc byte[8];
        AppendString(hash, row.Key);
        AppendString(hash, row.Value);
        BinaryPrimitives.WriteInt64LittleEndian(number, row.Version);
        hash.AppendData(number);
        BinaryPrimitives.WriteInt64LittleEndian(number, row.ModifiedIndex);
        hash.AppendData(number);
    }

    private static void AppendString(IncrementalHash hash, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(length, bytes.Length);
        hash.AppendData(length);
        hash.AppendData(bytes);
    }

    private static byte[] RootOf(byte[][] leaves) => Levels(leaves)[^1][0];

    /// <summary>Level 0 = the leaves; each next level hashes pairs; the last level is the root. Leaf count is a power of two.</summary>
    private static List<byte[][]> Levels(byte[][] leaves)
    {
        var levels = new List<byte[][]> { leaves };
        var current = leaves;
        Span<byte> buffer = stackalloc byte[65];
        buffer[0] = 0x01;
        while (current.Length > 1)
        {
            var next = new byte[(current.Length + 1) / 2][];
            for (int i = 0; i < next.Length; i++)
            {
                current[2 * i].CopyTo(buffer[1..]);
                (2 * i + 1 < current.Length ? current[2 * i + 1] : current[2 * i]).CopyTo(buffer[33..]);
                next[i] = SHA256.HashData(buffer);
            }
            levels.Add(next);
            current = next;
        }
        return levels;
    }
}
