using System.Security.Cryptography;

namespace Replication.Engine.Storage;

/// <summary>
/// The SHA-256 of a sequence of rows in key order, with each row encoded exactly as the Merkle tree's leaves
/// encode it (<see cref="MerkleTree"/>): what a backup's reader recomputes over the rows it received to
/// prove they are the rows the source holds. Thread-safe (stateless).
/// </summary>
public static class RowDigest
{
    /// <summary>Row count and lowercase hex SHA-256 of <paramref name="rows"/>.</summary>
    public static (long Count, string Sha256) Of(IEnumerable<StoredKey> rows)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long count = 0;
        foreach (var row in rows)
        {
            MerkleTree.AppendRow(hash, row);
            count++;
        }
        return (count, Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant());
    }

    /// <summary>An incremental digest for rows that arrive in pages.</summary>
    public sealed class Builder : IDisposable
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        public long Count { get; private set; }

        public void Add(StoredKey row)
        {
            MerkleTree.AppendRow(_hash, row);
            Count++;
        }

        public string Finish() => Convert.ToHexString(_hash.GetHashAndReset()).ToLowerInvariant();

        public void Dispose() => _hash.Dispose();
    }
}
