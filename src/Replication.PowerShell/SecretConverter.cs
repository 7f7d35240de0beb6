using System.Runtime.InteropServices;
using System.Security;
using Replication.Engine.Transport;

namespace Replication.PowerShell;

/// <summary>Turns a SecureString into a <see cref="ClusterSecret"/> (its UTF-8 bytes) without leaving a managed string copy behind.</summary>
internal static class SecretConverter
{
    public static ClusterSecret ToClusterSecret(SecureString secret)
    {
        IntPtr unmanaged = Marshal.SecureStringToGlobalAllocUnicode(secret);
        char[] chars = new char[secret.Length];
        byte[]? bytes = null;
        try
        {
            Marshal.Copy(unmanaged, chars, 0, chars.Length);
            bytes = System.Text.Encoding.UTF8.GetBytes(chars);
            return ClusterSecret.FromBytes(bytes);
        }
        finally
        {
            Marshal.ZeroFreeGlobalAllocUnicode(unmanaged);
            Array.Clear(chars);
            if (bytes is not null) Array.Clear(bytes);
        }
    }
}
