using System.Security.Cryptography;
using System.Text;

namespace Replication.Engine.Transport;

/// <summary>
/// The shared cluster secret every node and client of one cluster knows (docs/wire-protocol.md,
/// "Authentication"). It never travels: each connection proves knowledge of a key derived from it
/// (<see cref="DeriveKey"/>) with an HMAC challenge-response in both directions.
/// <para>
/// Redacted everywhere: <see cref="ToString"/> prints no byte of it, it is not a record (no
/// generated member printing), and no exception message built in this project contains it.
/// Immutable and thread-safe; the bytes are copied in and never handed out.
/// </para>
/// </summary>
public sealed class ClusterSecret
{
    /// <summary>Length of a generated secret, in bytes.</summary>
    public const int GeneratedLength = 32;

    /// <summary>Longest secret accepted, in bytes (a passphrase, not a file).</summary>
    public const int MaxLength = 4096;

    private static readonly byte[] KeyInfo = "replication/cluster-key/v1"u8.ToArray();
    private readonly byte[] _bytes;

    private ClusterSecret(byte[] bytes) => _bytes = bytes;

    /// <summary>A secret from raw bytes (1..<see cref="MaxLength"/>); the array is copied.</summary>
    public static ClusterSecret FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length is 0 or > MaxLength)
            throw new ArgumentException($"A cluster secret must be 1 to {MaxLength} bytes long.", nameof(bytes));
        return new ClusterSecret(bytes.ToArray());
    }

    /// <summary>A secret from a passphrase: its UTF-8 bytes.</summary>
    public static ClusterSecret FromString(string secret)
    {
        ArgumentNullException.ThrowIfNull(secret);
        byte[] bytes = Encoding.UTF8.GetBytes(secret);
        try { return FromBytes(bytes); }
        finally { CryptographicOperations.ZeroMemory(bytes); }
    }

    /// <summary>A fresh random secret of <see cref="GeneratedLength"/> bytes (kept in memory only by whoever holds it).</summary>
    public static ClusterSecret CreateRandom() => new(RandomNumberGenerator.GetBytes(GeneratedLength));

    /// <summary>
    /// The per-cluster authentication key: HKDF-SHA256 over the secret, with the cluster id as salt
    /// (so one passphrase used for two clusters still gives two unrelated keys).
    /// </summary>
    public ClusterKey DeriveKey(Guid clusterId)
    {
        Span<byte> salt = stackalloc byte[16];
        clusterId.TryWriteBytes(salt);
        return new ClusterKey(HKDF.DeriveKey(HashAlgorithmName.SHA256, _bytes, ClusterKey.Length, salt.ToArray(), KeyInfo));
    }

    /// <summary>Never the secret.</summary>
    public override string ToString() => "ClusterSecret(redacted)";
}
