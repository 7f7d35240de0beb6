using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Replication.Engine.Transport;

/// <summary>The 128-bit random nonces of the handshake: fresh from the system CSPRNG per connection, 16 bytes little-endian on the wire.</summary>
internal static class HandshakeNonce
{
    public static UInt128 Create()
    {
        Span<byte> bytes = stackalloc byte[16];
        RandomNumberGenerator.Fill(bytes);
        return Read(bytes);
    }

    public static void Write(Span<byte> destination, UInt128 nonce) => BinaryPrimitives.WriteUInt128LittleEndian(destination, nonce);

    public static UInt128 Read(ReadOnlySpan<byte> source) => BinaryPrimitives.ReadUInt128LittleEndian(source);
}
