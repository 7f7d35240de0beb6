using System.Security.Cryptography;

namespace Replication.Engine.Transport;

/// <summary>
/// The 32-byte key a connection authenticates with, derived from the <see cref="ClusterSecret"/>
/// and the cluster id (<see cref="ClusterSecret.DeriveKey"/>). It computes and checks the two
/// handshake proofs; comparisons are constant-time. Redacted in <see cref="ToString"/>.
/// Immutable and thread-safe.
/// </summary>
public sealed class ClusterKey
{
    /// <summary>Key length in bytes (HMAC-SHA256 block-friendly, and the HKDF output length).</summary>
    public const int Length = 32;

    /// <summary>Length of a proof (an HMAC-SHA256 tag).</summary>
    public const int ProofLength = 32;

    // Distinct labels: a listener's proof can never be replayed as a dialer's (reflection), and vice versa.
    private static readonly byte[] ListenerLabel = "replication/listener-proof/v2"u8.ToArray();
    private static readonly byte[] DialerLabel = "replication/dialer-proof/v2"u8.ToArray();

    private readonly byte[] _key;

    internal ClusterKey(byte[] key)
    {
        if (key.Length != Length) throw new ArgumentException($"A cluster key is {Length} bytes.", nameof(key));
        _key = key;
    }

    /// <summary>HMAC(key, listener label ‖ Hello payload ‖ listener nonce): the listener proves it knows the key.</summary>
    public byte[] ListenerProof(ReadOnlySpan<byte> helloPayload, UInt128 listenerNonce) => Proof(ListenerLabel, helloPayload, listenerNonce);

    /// <summary>HMAC(key, dialer label ‖ Hello payload ‖ listener nonce): the dialer proves it knows the key, for this connection only.</summary>
    public byte[] DialerProof(ReadOnlySpan<byte> helloPayload, UInt128 listenerNonce) => Proof(DialerLabel, helloPayload, listenerNonce);

    /// <summary>Constant-time check of a received listener proof.</summary>
    public bool VerifyListenerProof(ReadOnlySpan<byte> helloPayload, UInt128 listenerNonce, ReadOnlySpan<byte> proof) =>
        CryptographicOperations.FixedTimeEquals(ListenerProof(helloPayload, listenerNonce), proof);

    /// <summary>Constant-time check of a received dialer proof.</summary>
    public bool VerifyDialerProof(ReadOnlySpan<byte> helloPayload, UInt128 listenerNonce, ReadOnlySpan<byte> proof) =>
        CryptographicOperations.FixedTimeEquals(DialerProof(helloPayload, listenerNonce), proof);

    /// <summary>Never the key.</summary>
    public override string ToString() => "ClusterKey(redacted)";

    private byte[] Proof(byte[] label, ReadOnlySpan<byte> helloPayload, UInt128 nonce)
    {
        var input = new byte[label.Length + helloPayload.Length + 16];
        label.CopyTo(input, 0);
        helloPayload.CopyTo(input.AsSpan(label.Length));
        HandshakeNonce.Write(input.AsSpan(label.Length + helloPayload.Length), nonce);
        return HMACSHA256.HashData(_key, input);
    }
}
